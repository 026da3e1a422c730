"""One LoRA run on the tests' tiny model, for tests/test_distributed.py.

    python tests/ddp_worker.py OUT PER_PROCESS_BATCH                         # one process
    torchrun --nproc_per_node 2 tests/ddp_worker.py OUT PER_PROCESS_BATCH    # two (gloo on a CPU)
    torchrun --nproc_per_node 2 tests/ddp_worker.py OUT 4 0                  # TRL's loss (every position's logits)

``labkit.train.finetune`` runs unchanged; the main process writes OUT/result.json (the loss
per step, the LoRA weights' checksum, timings) next to the adapter."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TONE_LABELS, build_model, build_tokenizer  # noqa: E402

from labkit import train  # noqa: E402

# answers of 1 to 3 labels: the processes' batches hold different numbers of answer tokens, so the
# loss is right only if it is normalised by the count over all processes, as TRL's is
PAIRS = [{"prompt": f"message {i} ->", "completion": " " + " ".join([TONE_LABELS[i % 5]] * (1 + i % 3))}
         for i in range(64)]


def main(out: Path, batch_size: int, answer_only: bool = True) -> None:
    tokenizer = build_tokenizer()
    model = build_model(tokenizer)
    # random batches (not grouped by length), so one process with batch 2B and two with batch B
    # see the same examples in each optimizer step
    cfg = train.TrainConfig(max_steps=8, batch_size=batch_size, learning_rate=5e-3, r=4, lora_alpha=8,
                            logging_steps=1, eval_steps=None, save_steps=100, warmup_steps=0,
                            group_by_length=False, answer_only_logits=answer_only)
    start = time.perf_counter()
    result = train.finetune(model, tokenizer, PAIRS, None, cfg, output_dir=out, resume=False, live_plot=False)
    if train.is_main_process():
        lora = [p.detach().flatten() for n, p in result.model.named_parameters() if "lora_" in n]
        (out / "result.json").write_text(json.dumps({
            "world_size": train.world_size(), "global_batch": train.global_batch_size(cfg),
            "losses": [loss for _, loss in result.losses], "steps": result.steps,
            "lora_abs_sum": float(sum(t.abs().sum() for t in lora)),
            "train_seconds": result.train_seconds, "wall_seconds": time.perf_counter() - start,
            "trained_tokens": result.trained_tokens}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), bool(int(sys.argv[3])) if len(sys.argv) > 3 else True)
