"""Does bf16 autocast train as well as fp32 on a CPU? Lesson 01's tone run in both, paired by seed.

    python bench/bf16_vs_fp32.py [--seeds 0 1 2 3 4] [--train_examples N] [--max_steps N]

For each seed, trains lesson 01's LoRA recipe (the active profile's config) once per dtype,
everything else equal (same data, seed, answer-only logits), and label-scores the 138 test
messages with each adapter. The bf16-trained adapter is scored twice: in fp32 (as labkit
serves it) and under bf16 autocast (as it was trained), which tells a train/serve precision
mismatch apart from worse training. Prints, per seed, each accuracy with lesson 04's paired
bootstrap and McNemar test, the training seconds and trained tokens/s; then the mean paired
difference over seeds with a t-interval (the seed-to-seed spread included), and the same
examples pooled over seeds. On a CPU without native bf16 the bf16 runs are slow (emulated).
This script is the evidence for :func:`labkit.env.train_dtype`.
"""

import argparse
import contextlib
import dataclasses
import math

import numpy as np
import torch

from labkit import data, env, evaluate, models, train
from labkit.course import lessons
from tone_test import correct, tone_test

# two-sided 95% quantiles of Student's t, by degrees of freedom (no scipy needed)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (the nearest tabled df below)."""
    return T975[max(k for k in T975 if k <= df)] if df < 30 else 1.96


def t_interval(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval of ``values`` (one number per seed)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half


def score(model, tok, tone, autocast: bool = False) -> np.ndarray:
    """Per-example correctness (0/1) of label scoring, in fp32 or under bf16 autocast."""
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        return correct(model, tok, tone)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train_examples", type=int, default=None, help="default: the profile's")
    p.add_argument("--max_steps", type=int, default=None, help="default: the profile's")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a = p.parse_args()

    config, pairs = lessons.tone_recipe()
    if a.train_examples:
        pairs = data.task_pairs("tone", list(data.load_dataset("tone")["train"])[: a.train_examples])
    if a.max_steps:
        config = dataclasses.replace(config, max_steps=a.max_steps, save_steps=a.max_steps)
    tone = tone_test()
    base, tok = models.load_base()
    runs = []
    for seed in a.seeds:
        run = {"seed": seed}
        for dtype in ("float32", "bfloat16"):
            cfg = dataclasses.replace(config, dtype=dtype, seed=seed)
            result = train.finetune(base, tok, pairs, None, cfg, output_dir=f"/tmp/labkit-bench-{dtype}",
                                    resume=False, live_plot=False, verbose=False)
            run[dtype] = score(result.model, tok, tone)
            if dtype == "bfloat16":
                run["bfloat16, scored in bf16"] = score(result.model, tok, tone, autocast=True)
            run[f"{dtype} seconds"] = result.train_seconds
            run[f"{dtype} tokens/s"] = result.trained_tokens / result.train_seconds
            run[f"{dtype} final loss"] = result.losses[-1][1] if result.losses else float("nan")
            del result
        runs.append(run)
        d = evaluate.paired_bootstrap(run["float32"], run["bfloat16"], seed=seed)
        print(f"seed {seed}: fp32 {run['float32'].mean():.3f}, bf16 {run['bfloat16'].mean():.3f} "
              f"(bf16-scored {run['bfloat16, scored in bf16'].mean():.3f}), bf16 - fp32 {d['difference']:+.3f} "
              f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]", flush=True)

    print(f"\nLesson 01's tone LoRA: {len(pairs)} examples, {config.max_steps} steps, batch {config.batch_size}; "
          f"{len(tone['prompts'])} test messages; CPU: {env.cpu_capability()}\n")
    print("| seed | fp32 acc | bf16 acc | bf16 acc, scored in bf16 | bf16 - fp32 (95% paired bootstrap) "
          "| McNemar p | fp32 s | bf16 s | bf16 speed-up | fp32 final loss | bf16 final loss |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        d = evaluate.paired_bootstrap(r["float32"], r["bfloat16"], seed=r["seed"])
        m = evaluate.mcnemar(r["float32"], r["bfloat16"])
        print(f"| {r['seed']} | {r['float32'].mean():.3f} | {r['bfloat16'].mean():.3f} "
              f"| {r['bfloat16, scored in bf16'].mean():.3f} | {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
              f"| {m['p_value']:.2f} | {r['float32 seconds']:.0f} | {r['bfloat16 seconds']:.0f} "
              f"| {r['float32 seconds'] / r['bfloat16 seconds']:.2f}x | {r['float32 final loss']:.3f} "
              f"| {r['bfloat16 final loss']:.3f} |")

    diffs = [r["bfloat16"].mean() - r["float32"].mean() for r in runs]
    mean, lo, hi = t_interval(diffs)
    print(f"\nbf16 - fp32 over {len(runs)} seeds (t-interval, the seed-to-seed spread included): "
          f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    cross = [r["bfloat16, scored in bf16"].mean() - r["bfloat16"].mean() for r in runs]
    mean_c, lo_c, hi_c = t_interval(cross)
    print(f"bf16-trained adapter scored in bf16 - scored in fp32: {mean_c:+.3f} [{lo_c:+.3f}, {hi_c:+.3f}]")
    fp32_all = np.concatenate([r["float32"] for r in runs])
    bf16_all = np.concatenate([r["bfloat16"] for r in runs])
    pooled = evaluate.paired_bootstrap(fp32_all, bf16_all, seed=0)
    m = evaluate.mcnemar(fp32_all, bf16_all)
    print(f"pooled over seeds ({len(fp32_all)} paired answers): {pooled['difference']:+.3f} "
          f"[{pooled['ci_low']:+.3f}, {pooled['ci_high']:+.3f}], McNemar p = {m['p_value']:.3f} "
          f"(fp32 only right {m['a_only']}, bf16 only right {m['b_only']})")
    speed = [r["float32 seconds"] / r["bfloat16 seconds"] for r in runs]
    print(f"bf16 training speed-up over fp32: {np.median(speed):.2f}x (median over seeds, "
          f"{min(speed):.2f}-{max(speed):.2f}x)")


if __name__ == "__main__":
    main()
