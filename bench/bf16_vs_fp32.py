"""Does bf16 autocast train as well as fp32 on a CPU? Lesson 01's tone run in both, side by side.

    python bench/bf16_vs_fp32.py [--train_examples 480] [--max_steps 60] [--dtypes float32,bfloat16]

Trains lesson 01's LoRA recipe (the quick profile's config; ``--train_examples``/``--max_steps``
change its size) once per dtype, everything else equal (same data, seed, answer-only logits),
then label-scores the 138 test messages with each adapter (in fp32). Prints the training loss
every 10 steps, the test accuracy, the training time and trained tokens/s. On a CPU without
native bf16 the bf16 row is slow (emulated). labkit trains in fp32 on every CPU by default;
this script is the evidence for that choice (see ``labkit.env.train_dtype``).
"""

import argparse
import dataclasses

from labkit import data, env, evaluate, lessons, models, train


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train_examples", type=int, default=None, help="default: the quick profile's")
    p.add_argument("--max_steps", type=int, default=None, help="default: the quick profile's")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--seed", type=int, default=None, help="default: the recipe's (0)")
    a = p.parse_args()

    config, pairs = lessons.tone_recipe()
    if a.train_examples:
        pairs = data.task_pairs("tone", list(data.load_dataset("tone")["train"])[: a.train_examples])
    if a.max_steps:
        config = dataclasses.replace(config, max_steps=a.max_steps, save_steps=a.max_steps)
    if a.seed is not None:
        config = dataclasses.replace(config, seed=a.seed)
    test = list(data.load_dataset("tone")["test"])
    labels = sorted({r["tone"] for r in data.load_dataset("tone")["train"]})
    prompts = [data.task_pairs("tone", [r])[0]["prompt"] for r in test]
    gold = [r["tone"] for r in test]
    base, tok = models.load_base()
    rows = []
    for dtype in a.dtypes.split(","):
        cfg = dataclasses.replace(config, dtype=dtype)
        result = train.finetune(base, tok, pairs, None, cfg, output_dir=f"/tmp/labkit-bench-{dtype}",
                                resume=False, live_plot=False, verbose=False)
        predicted = evaluate.classify(result.model, tok, prompts, labels)
        accuracy = evaluate.classification_report(gold, predicted, labels)["accuracy"]
        losses = {step: loss for step, loss in result.losses}
        rows.append((dtype, accuracy, result.train_seconds, result.trained_tokens / result.train_seconds, losses))
        del result

    print(f"\nLesson 01's tone LoRA: {len(pairs)} examples, {config.max_steps} steps, batch {config.batch_size}; "
          f"seed {config.seed}; CPU: {env.cpu_capability()}\n")
    print("| dtype | test accuracy | train seconds | trained tokens/s |")
    print("|---|---|---|---|")
    for dtype, accuracy, seconds, speed, _ in rows:
        print(f"| {dtype} | {accuracy:.3f} | {seconds:.0f} | {speed:.0f} |")
    steps = sorted(set().union(*(r[4] for r in rows)))
    shown = [s for s in steps if s % 10 == 0 or s == steps[-1]]
    print("\ntraining loss by step\n")
    print("| step | " + " | ".join(r[0] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for s in shown:
        print(f"| {s} | " + " | ".join(f"{r[4].get(s, float('nan')):.3f}" for r in rows) + " |")


if __name__ == "__main__":
    main()
