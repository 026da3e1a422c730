"""Trained tokens per second (padding excluded): labkit's settings vs its previous ones vs TRL's defaults.

    python bench/train_throughput.py [--steps 4] [--batch_size 8] [--tasks tone,recipes]

Prints, in one run: what the CPU can do (its vector units, native bf16 or not, and the measured
fp32 and bf16 matmul peaks on this process's threads), then one Markdown table per task. Each row
trains the same LoRA adapter on the same examples; the rows differ only in their settings:

- ``labkit``: what ``labkit.train.finetune`` does by default on a CPU (fp32, the output layer on
  the answer tokens only: ``labkit.train``);
- ``labkit, bf16``: the same with ``dtype="bfloat16"`` (bf16 autocast and plain attention): as
  accurate as fp32 over 5 paired seeds where the CPU has native bf16 but hardly faster over a
  whole run (``bench/bf16_vs_fp32.py``), so it is a choice, not the default; emulated and slow
  on a CPU without native bf16;
- ``labkit before``: the previous default (fp32, TRL's loss, which runs the output layer at every
  position on a CPU);
- ``TRL defaults``: an untouched ``SFTConfig`` (bf16 autocast and gradient checkpointing, which
  TRL turns on even on a CPU; ``use_cpu=True`` is the one setting added, since without it the
  defaults do not start).

Utilisation is the model's nominal training cost, 4 x parameters FLOPs per trained token (frozen
weights need no weight gradients), at the measured tokens/s, divided by the matmul peak of the
row's dtype. A warm-up step is excluded from the timing. Tone has short prompts (~20 tokens),
recipes long ones (~150): where training compute goes differs between them.
"""

import argparse
import shutil
import tempfile

import torch

from labkit.course.timing import StepTimer


def labkit_row(name, base, tok, pairs, steps, batch_size, **settings) -> dict:
    """One run of ``labkit.train.finetune`` with the timer attached."""
    from labkit import train
    from labkit.train import AnswerOnlySFTTrainer

    cfg = train.TrainConfig(max_steps=steps + 1, batch_size=batch_size, eval_steps=None,
                            save_steps=10_000, **settings)
    dtype = cfg.train_dtype()
    timer, out = StepTimer(), tempfile.mkdtemp(prefix="bench-")
    train.finetune(base, tok, pairs, config=cfg, output_dir=out, resume=False, live_plot=False,
                   callbacks=[timer], verbose=False)
    shutil.rmtree(out, ignore_errors=True)
    return {"settings": name, "dtype": dtype, "checkpointing": cfg.uses_gradient_checkpointing(),
            "output layer": "answer tokens" if issubclass(train.trainer_class(cfg), AnswerOnlySFTTrainer)
                            else "every position",
            "attention": train.training_attention(dtype) or "sdpa", **_speed(timer, steps)}


def trl_defaults_row(base, tok, pairs, steps, batch_size) -> dict:
    """One run of TRL's SFTTrainer with an untouched SFTConfig (plus use_cpu on a CPU)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from labkit import train

    model = train.add_lora(train._copy_model(base), train.TrainConfig())
    out = tempfile.mkdtemp(prefix="bench-")
    args = SFTConfig(output_dir=out, max_steps=steps + 1, per_device_train_batch_size=batch_size,
                     report_to="none", save_strategy="no", include_num_input_tokens_seen="non_padding",
                     use_cpu=not torch.cuda.is_available())
    timer = StepTimer()
    SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(pairs),
               callbacks=[timer]).train()
    shutil.rmtree(out, ignore_errors=True)
    dtype = torch.bfloat16 if args.bf16 else (torch.float16 if args.fp16 else torch.float32)
    return {"settings": "TRL defaults", "dtype": dtype, "checkpointing": args.gradient_checkpointing,
            "output layer": "every position", "attention": "sdpa", **_speed(timer, steps)}


def _speed(timer, steps: int) -> dict:
    """s/step and trained tokens/s of the steps after the first (:func:`labkit.course.timing.step_timer`)."""
    return {"s/step": timer.seconds_per_step, "tokens/s": timer.tokens_per_second}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warm-up step)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--tasks", default="tone,recipes", help="comma-separated bundled tasks")
    a = p.parse_args()

    from labkit import data, env, models

    # FLOP/s, measured the way labkit doctor and make course measure them (env.matmul_peak, GFLOP/s)
    peaks = {dtype: 1e9 * env.matmul_peak(dtype, n=2048, seconds=1.5) for dtype in (torch.float32, torch.bfloat16)}
    print(f"\nCPU: {env.cpu_capability()}; {torch.get_num_threads()} threads; matmul peak "
          f"fp32 {peaks[torch.float32] / 1e9:.0f} GFLOP/s, bf16 {peaks[torch.bfloat16] / 1e9:.0f} GFLOP/s; "
          f"labkit trains in {str(env.train_dtype()).replace('torch.', '')} here by default")
    base, tok = models.load_base()
    n_params = sum(p.numel() for p in base.parameters())
    for task in a.tasks.split(","):
        pairs = data.task_pairs(task, list(data.load_dataset(task)["train"])[: (a.steps + 1) * a.batch_size])
        rows = [labkit_row("labkit", base, tok, pairs, a.steps, a.batch_size),
                labkit_row("labkit, bf16", base, tok, pairs, a.steps, a.batch_size, dtype="bfloat16"),
                labkit_row("labkit before", base, tok, pairs, a.steps, a.batch_size, dtype="float32",
                           answer_only_logits=False),
                trl_defaults_row(base, tok, pairs, a.steps, a.batch_size)]
        before = rows[2]["tokens/s"]
        print(f"\nLoRA training throughput, task={task}, batch {a.batch_size}, {a.steps} timed steps\n")
        print("| settings | dtype | gradient checkpointing | output layer on | attention | s/step "
              "| trained tokens/s | vs labkit before | utilisation |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            utilisation = 4 * n_params * r["tokens/s"] / peaks.get(r["dtype"], peaks[torch.float32])
            print(f"| {r['settings']} | {str(r['dtype']).replace('torch.', '')} | {r['checkpointing']} "
                  f"| {r['output layer']} | {r['attention']} | {r['s/step']:.2f} | {r['tokens/s']:.1f} "
                  f"| {r['tokens/s'] / before:.2f}x | {100 * utilisation:.0f}% |")


if __name__ == "__main__":
    main()
