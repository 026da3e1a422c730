"""Trained tokens per second (padding excluded): labkit's CPU defaults vs TRL's untouched defaults.

    python bench/train_throughput.py [--steps 4] [--batch_size 8] [--task tone]

Both runs train the same LoRA adapter on the same examples through TRL's SFTTrainer; the only
difference is the SFTConfig: labkit's (fp32, no gradient checkpointing on CPU, length-grouped
batches) or TRL's defaults (bf16 autocast and gradient checkpointing, which TRL turns on even on
a CPU; ``use_cpu=True`` is the one setting added there, since without it the defaults do not
start). Prints one Markdown table. A warm-up step is excluded from the timing.
"""

import argparse
import shutil
import tempfile
import time

import torch
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time and non-padding tokens after the first (warm-up) step."""

    def __init__(self):
        self.t0 = self.tokens0 = None
        self.seconds = self.tokens = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self.t0 is None:
            self.t0, self.tokens0 = now, state.num_input_tokens_seen
        else:
            self.seconds, self.tokens = now - self.t0, state.num_input_tokens_seen - self.tokens0


def run(config_kind: str, steps: int, batch_size: int, task: str) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from labkit import data, models, train

    model, tok = models.load_base()
    pairs = data.task_pairs(task, list(data.load_dataset(task)["train"])[: steps * batch_size])
    cfg = train.TrainConfig(max_steps=steps + 1, batch_size=batch_size, eval_steps=None, save_steps=10_000)
    model = train.add_lora(model, cfg)
    out = tempfile.mkdtemp(prefix="bench-")
    if config_kind == "labkit":
        args = train.sft_config(cfg, out, has_eval=False)
    else:  # TRL's defaults: only the run length and batch size set, plus use_cpu on a CPU (without
        # it transformers refuses TRL's default bf16=True: "Your setup doesn't support bf16/gpu")
        args = SFTConfig(output_dir=out, max_steps=steps + 1, per_device_train_batch_size=batch_size,
                         report_to="none", save_strategy="no", include_num_input_tokens_seen="non_padding",
                         use_cpu=not torch.cuda.is_available())
    timer = StepTimer()
    trainer = SFTTrainer(model=model, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(pairs), callbacks=[timer])
    trainer.train()
    shutil.rmtree(out, ignore_errors=True)
    return {"settings": config_kind, "dtype": "bf16" if args.bf16 else ("fp16" if args.fp16 else "fp32"),
            "gradient checkpointing": args.gradient_checkpointing,
            "s/step": timer.seconds / max(steps - 0, 1),
            "tokens/s": timer.tokens / timer.seconds if timer.seconds else float("nan")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warm-up step)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--task", default="tone")
    a = p.parse_args()
    rows = [run(kind, a.steps, a.batch_size, a.task) for kind in ("labkit", "trl-defaults")]
    print(f"\nLoRA training throughput, task={a.task}, batch {a.batch_size}, {a.steps} timed steps, "
          f"{torch.get_num_threads()} threads\n")
    print("| settings | dtype | gradient checkpointing | s/step | trained tokens/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['settings']} | {r['dtype']} | {r['gradient checkpointing']} | {r['s/step']:.2f} | {r['tokens/s']:.1f} |")
    print(f"\nspeed-up of labkit's settings: {rows[0]['tokens/s'] / rows[1]['tokens/s']:.1f}x")


if __name__ == "__main__":
    main()
