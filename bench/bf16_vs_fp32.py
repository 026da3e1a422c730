"""Does bf16 train as well as fp32 on a CPU, and faster? Lesson 01's tone run, paired by seed.

    python bench/bf16_vs_fp32.py [--seeds 0 1 2 3 4] [--arms fp32 stored] [--train_examples N] [--max_steps N]
    python bench/bf16_vs_fp32.py --profile 10      # where a step's time goes (torch.profiler), each arm

Three ways to train lesson 01's LoRA recipe (the active profile's config), everything else equal
(same data, seed, answer-only logits):

- ``fp32``: labkit's default on a CPU;
- ``autocast``: bf16 autocast over the fp32 base (``TrainConfig(dtype="bfloat16")``): every
  frozen weight is cast to bf16 on every step;
- ``stored``: the frozen decoder layers stored in bf16 (:func:`labkit.models.store_decoder_in_bf16`),
  trained under the same autocast: nothing to cast. The LoRA weights, the optimizer state, the
  embedding/output layer and the loss stay fp32 (the logits at the answer tokens are fp32).

Each adapter label-scores the 138 test messages twice: on the fp32 base (as labkit serves it)
and as it was trained, which tells a train/serve precision mismatch apart from worse training. Prints, per seed, each accuracy with lesson 04's paired
bootstrap and McNemar test, the seconds of the whole ``finetune`` call (the wall time a learner waits: model setup, training,
saving) and of training alone; then each bf16 way's mean paired difference over seeds with a
t-interval (the seed-to-seed spread included), the same examples pooled over seeds, and the
median speed-up. On a CPU without native bf16 the bf16 runs are slow (emulated). This script is
the evidence for :func:`labkit.env.train_dtype`.
"""

import argparse
import contextlib
import copy
import dataclasses
import math
import time

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


ARMS = {"fp32": "float32", "autocast": "bfloat16", "stored": "bfloat16"}   # arm: TrainConfig.dtype


def score(model, tok, tone, autocast: bool = False) -> np.ndarray:
    """Per-example correctness (0/1) of label scoring, in fp32 or under bf16 autocast."""
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        return correct(model, tok, tone)


def base_for(arm: str, base):
    """The base model an arm trains: the fp32 one, or a copy with its decoder stored in bf16."""
    return models.store_decoder_in_bf16(copy.deepcopy(base)) if arm == "stored" else base


def train_arm(arm: str, base, tok, pairs, config, seed: int, tone) -> dict:
    """One run of one arm: the whole finetune call's seconds, training's, and the adapter scored
    on the fp32 base (as labkit serves it) and as trained."""
    from peft import PeftModel

    cfg = dataclasses.replace(config, dtype=ARMS[arm], seed=seed)
    start = time.perf_counter()
    result = train.finetune(base_for(arm, base), tok, pairs, None, cfg, output_dir=f"/tmp/labkit-bench-{arm}",
                            resume=False, live_plot=False, verbose=False)
    wall = time.perf_counter() - start
    served = PeftModel.from_pretrained(copy.deepcopy(base), result.adapter_dir).eval()
    return {"served": score(served, tok, tone), "as trained": score(result.model, tok, tone, autocast=arm != "fp32"),
            "wall": wall, "train": result.train_seconds, "tokens/s": result.trained_tokens / result.train_seconds,
            "final loss": result.losses[-1][1] if result.losses else float("nan")}


def profile_arm(arm: str, base, tok, pairs, config, steps: int) -> None:
    """Print torch.profiler's top operators (by CPU time) over ``steps`` training steps of one arm."""
    from torch.profiler import ProfilerActivity, profile

    cfg = dataclasses.replace(config, dtype=ARMS[arm], max_steps=steps, save_steps=steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train.finetune(base_for(arm, base), tok, pairs, None, cfg, output_dir=f"/tmp/labkit-bench-profile-{arm}",
                       resume=False, live_plot=False, verbose=False)
    print(f"\n## {arm}: {steps} steps, top operators by own CPU time\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def paired_line(runs: list, arm: str, key: str = "served") -> str:
    """The arm's accuracy minus fp32's: mean over seeds with its t-interval, and pooled over seeds."""
    diffs = [r[arm][key].mean() - r["fp32"]["served"].mean() for r in runs]
    mean, lo, hi = t_interval(diffs)
    ref = np.concatenate([r["fp32"]["served"] for r in runs])
    other = np.concatenate([r[arm][key] for r in runs])
    pooled = evaluate.paired_bootstrap(ref, other, seed=0)
    m = evaluate.mcnemar(ref, other)
    return (f"{arm} ({key}) - fp32 over {len(runs)} seeds: {mean:+.3f} [{lo:+.3f}, {hi:+.3f}] (t-interval); pooled "
            f"({len(ref)} paired answers) {pooled['difference']:+.3f} [{pooled['ci_low']:+.3f}, {pooled['ci_high']:+.3f}], "
            f"McNemar p = {m['p_value']:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train_examples", type=int, default=None, help="default: the profile's")
    p.add_argument("--max_steps", type=int, default=None, help="default: the profile's")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=["fp32", "stored"],
                   help="fp32 is always run: the others are compared with it")
    p.add_argument("--profile", type=int, default=None, metavar="STEPS",
                   help="instead: profile STEPS training steps of each arm and print the top operators")
    a = p.parse_args()

    config, pairs = lessons.tone_recipe()
    if a.train_examples:
        pairs = data.task_pairs("tone", list(data.load_dataset("tone")["train"])[: a.train_examples])
    if a.max_steps:
        config = dataclasses.replace(config, max_steps=a.max_steps, save_steps=a.max_steps)
    arms = ["fp32", *[arm for arm in a.arms if arm != "fp32"]]
    base, tok = models.load_base()
    print(f"CPU: {env.cpu_capability()}; {env.cpu_threads()} threads", flush=True)
    if a.profile:
        for arm in arms:
            profile_arm(arm, base, tok, pairs, config, a.profile)
        return
    tone = tone_test()
    runs = []
    for seed in a.seeds:
        # the arms alternate within each seed, so a machine that slows down over the run slows every arm
        run = {"seed": seed, **{arm: train_arm(arm, base, tok, pairs, config, seed, tone) for arm in arms}}
        runs.append(run)
        print(f"seed {seed}: " + ", ".join(f"{arm} {run[arm]['served'].mean():.3f} in {run[arm]['wall']:.0f} s"
                                           for arm in arms), flush=True)

    print(f"\nLesson 01's tone LoRA: {len(pairs)} examples, {config.max_steps} steps, batch {config.batch_size}; "
          f"{len(tone['prompts'])} test messages; CPU: {env.cpu_capability()}\n")
    print("| seed | arm | accuracy, served on the fp32 base | accuracy, as trained | vs fp32 (95% paired bootstrap) "
          "| McNemar p | whole call s | training s | speed-up (whole call) | final loss |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        for arm in arms:
            x = r[arm]
            d = evaluate.paired_bootstrap(r["fp32"]["served"], x["served"], seed=r["seed"])
            m = evaluate.mcnemar(r["fp32"]["served"], x["served"])
            print(f"| {r['seed']} | {arm} | {x['served'].mean():.3f} | {x['as trained'].mean():.3f} "
                  f"| {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] | {m['p_value']:.2f} "
                  f"| {x['wall']:.0f} | {x['train']:.0f} | {r['fp32']['wall'] / x['wall']:.2f}x | {x['final loss']:.3f} |")
    print()
    for arm in arms[1:]:
        print(paired_line(runs, arm))
        print(paired_line(runs, arm, "as trained"))
        speed = [r["fp32"]["wall"] / r[arm]["wall"] for r in runs]
        train_speed = [r["fp32"]["train"] / r[arm]["train"] for r in runs]
        verdict = "meets" if np.median(speed) >= 1.3 else "misses"
        print(f"{arm}: whole call {np.median(speed):.2f}x faster than fp32 (median over seeds, {min(speed):.2f}-"
              f"{max(speed):.2f}x; training alone {np.median(train_speed):.2f}x): {verdict} the 1.3x rule")


if __name__ == "__main__":
    main()
