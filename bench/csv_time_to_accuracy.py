"""Time to accuracy on a learner's own classification CSV, through `labkit finetune` as a learner runs it.

    python bench/csv_time_to_accuracy.py [--csv bench/data/reviews.csv] [--template "{text} -> {label}"]
                                         [--bar 0.85] [--settings defaults "--max_steps 150"] [--seeds 0 1 2]

Each setting is a list of `labkit finetune` flags over its defaults ("defaults" = none). For each
setting and seed: runs `labkit finetune` on the CSV in a fresh process (labkit's stratified
80/10/10 split of one file), timed on the wall clock as the learner waits for it, model load
included; then scores the test split by label scoring, as `labkit evaluate --split test` does,
and prints: steps, training seconds, the whole command's seconds, test accuracy with its 95%
Wilson interval, whether the bar was reached within 5 minutes, and the paired difference from
the first setting's run of the same seed (lesson 04's paired bootstrap and McNemar's test). The
first setting by default: finetune's defaults before they followed the task (50 steps at 1e-3,
a validation loss every 10 steps).
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labkit import data, evaluate, models

HERE = Path(__file__).resolve().parent
BEFORE = "--max_steps 50 --learning_rate 1e-3 --eval_steps 10"     # finetune's defaults before they followed the task
DEFAULT_SETTINGS = [BEFORE, "defaults"]
BUDGET_S = 300


def flags_for(setting: str, n_train: int) -> list[str]:
    """The finetune flags of a setting; ``--epochs_of_data K`` (this script's own) means
    ``--max_steps`` = K passes over the training split at the default batch of 8."""
    if setting == "defaults":
        return []
    words = shlex.split(setting)
    if "--epochs_of_data" in words:
        i = words.index("--epochs_of_data")
        steps = round(float(words[i + 1]) * n_train / 8)
        words[i:i + 2] = ["--max_steps", str(steps)]
    return words


def run_finetune(csv: Path, template: str, flags: list[str], seed: int, out: Path) -> dict:
    """`labkit finetune` in a fresh process; its wall-clock seconds, steps and adapter folder."""
    command = [str(Path(sys.executable).parent / "labkit"), "finetune", "--data_name", str(csv), "--text_template",
               template, "--seed", str(seed), "--output_path", str(out), "--overwrite", *flags]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"labkit finetune failed:\n{shlex.join(command)}\n{done.stderr[-3000:]}")
    saved = re.search(r"Saved to (\S+) after (\d+) steps in (\d+) s", done.stdout)
    return {"adapter": saved.group(1), "steps": int(saved.group(2)), "train s": int(saved.group(3)), "wall s": seconds,
            "stdout": done.stdout}


def test_correct(task, adapter_dir: str) -> np.ndarray:
    """1/0 per test example: the adapter's label-scored answer is the gold label."""
    from peft import PeftModel

    base, tok = models.load_base()
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    records = task.split("test", "--split")
    prompts = [p["prompt"] for p in task.pairs(records)]
    scored, prefix = evaluate.label_scoring_setup(tok, task, prompts)
    predicted = evaluate.classify(model, tok, scored, task.labels, prefix)
    return np.array([p == str(r[task.target]).strip() for p, r in zip(predicted, records)], dtype=float)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default=str(HERE / "data" / "reviews.csv"))
    p.add_argument("--template", default="{text} -> {label}")
    p.add_argument("--bar", type=float, default=0.85, help="the test accuracy to reach")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = p.parse_args()

    task = data.load_task(a.csv, a.template)
    n_train, n_test = len(task.split("train", "train")), len(task.split("test", "test"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="labkit-csv-tta-") as tmp:
        for seed in a.seeds:
            for setting in a.settings:
                run = run_finetune(Path(a.csv), a.template, flags_for(setting, n_train), seed, Path(tmp) / "run")
                rows.append({"seed": seed, "setting": setting, **run, "correct": test_correct(task, run["adapter"])})
                r = rows[-1]
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                                  if k != "correct"} | {"accuracy": round(r["correct"].mean(), 3)}), flush=True)

    print(f"\n{a.csv}: {n_train} training, {n_test} test examples, labels {task.labels}; bar {a.bar:.0%} within "
          f"{BUDGET_S // 60} minutes\n")
    print("| seed | flags over the defaults | steps | train s | whole command s | test acc (95% CI) | bar reached in time "
          "| vs the first setting (paired 95%) | McNemar p |")
    print("|---|---|---:|---:|---:|---|---|---|---:|")
    for r in rows:
        acc = r["correct"].mean()
        low, high = evaluate.wilson_ci(int(r["correct"].sum()), len(r["correct"]))
        ref = next(x for x in rows if x["seed"] == r["seed"] and x["setting"] == rows[0]["setting"])
        if r is ref:
            paired, p_value = "", ""
        else:
            d = evaluate.paired_bootstrap(ref["correct"], r["correct"], seed=0)
            paired = f"{d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
            p_value = f"{evaluate.mcnemar(r['correct'], ref['correct'])['p_value']:.2f}"
        reached = "yes" if acc >= a.bar and r["wall s"] <= BUDGET_S else "no"
        print(f"| {r['seed']} | {r['setting']} | {r['steps']} | {r['train s']} | {r['wall s']:.0f} | {acc:.3f} "
              f"[{low:.3f}, {high:.3f}] | {reached} | {paired} | {p_value} |")


if __name__ == "__main__":
    main()
