"""One LoRA run on the tests' tiny model, for tests/test_distributed.py and tests/test_multinode.py.

    python tests/ddp_worker.py OUT PER_PROCESS_BATCH                              # one process
    torchrun --nproc_per_node 2 tests/ddp_worker.py OUT PER_PROCESS_BATCH         # two (gloo on a CPU)
    torchrun --nproc_per_node 2 tests/ddp_worker.py OUT 4 --full-logits           # TRL's loss (every position's logits)
    torchrun --nnodes 2 ... tests/ddp_worker.py OUT 4 --save-steps 2 --stall-after 4   # a node that dies (see below)

``labkit.train.finetune`` runs unchanged; the main process writes OUT/result.json (the loss
per step, the LoRA weights' checksum, timings) next to the adapter.

``--stall-after N`` plays a node that dies for tests/test_multinode.py: once the checkpoint of
step N is saved, the last rank's process writes its pid to OUT/stalled.pid and hangs there (only
the first time: a restarted process finds the file and trains on), so the test can kill it at a
known step. A restarted worker resumes from the newest checkpoint (``resume=True``)."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TONE_LABELS, build_model, build_tokenizer  # noqa: E402

from labkit import train  # noqa: E402

# answers of 1 to 3 labels: the processes' batches hold different numbers of answer tokens, so the
# loss is right only if it is normalised by the count over all processes, as TRL's is
PAIRS = [{"prompt": f"message {i} ->", "completion": " " + " ".join([TONE_LABELS[i % 5]] * (1 + i % 3))}
         for i in range(64)]


class StallAfterSave(TrainerCallback):
    """The last rank hangs once after the checkpoint of ``step`` is saved (see the module's docstring)."""

    def __init__(self, step: int, pid_file: Path):
        self.step, self.pid_file = step, pid_file

    def on_save(self, args, state, control, **kwargs):
        last_rank = train.world_size() - 1
        if state.global_step == self.step and args.process_index == last_rank and not self.pid_file.exists():
            self.pid_file.write_text(str(os.getpid()))
            while True:
                time.sleep(1)


def main(out: Path, batch_size: int, answer_only: bool, save_steps: int, stall_after: int | None) -> None:
    tokenizer = build_tokenizer()
    model = build_model(tokenizer)
    # random batches (not grouped by length), so one process with batch 2B and two with batch B
    # see the same examples in each optimizer step
    cfg = train.TrainConfig(max_steps=8, batch_size=batch_size, learning_rate=5e-3, r=4, lora_alpha=8,
                            logging_steps=1, eval_steps=None, save_steps=save_steps, warmup_steps=0,
                            group_by_length=False, answer_only_logits=answer_only)
    callbacks = [StallAfterSave(stall_after, out / "stalled.pid")] if stall_after else ()
    start = time.perf_counter()
    result = train.finetune(model, tokenizer, PAIRS, None, cfg, output_dir=out, resume=True, live_plot=False,
                            callbacks=callbacks)
    if train.is_main_process():
        lora = [p.detach().flatten() for n, p in result.model.named_parameters() if "lora_" in n]
        (out / "result.json").write_text(json.dumps({
            "world_size": train.world_size(), "global_batch": train.global_batch_size(cfg),
            "losses": [loss for _, loss in result.losses], "steps": result.steps,
            "lora_abs_sum": float(sum(t.abs().sum() for t in lora)),
            "train_seconds": result.train_seconds, "wall_seconds": time.perf_counter() - start,
            "trained_tokens": result.trained_tokens, "restarts": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("batch_size", type=int)
    parser.add_argument("--full-logits", action="store_true", help="TRL's loss: the output layer at every position")
    parser.add_argument("--save-steps", type=int, default=100)
    parser.add_argument("--stall-after", type=int, default=None)
    a = parser.parse_args()
    main(a.out, a.batch_size, not a.full_logits, a.save_steps, a.stall_after)
