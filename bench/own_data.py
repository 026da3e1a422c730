"""A learner's own data at the defaults: `labkit finetune` then the test split, exactly as a learner runs them,
on real, imbalanced, licensed sets and on imbalanced variants of the course's own data.

    python bench/own_data.py --prepare                       # build the sets (downloads one sdist from PyPI)
    python bench/own_data.py [--sets nyt3 movies5 reviews-imb] [--seeds 0 1 2] [--settings defaults "--max_steps 200"]

The sets (written as CSVs into $LABKIT_HOME/bench-data/own/ by --prepare):

| set | rows | labels | source, licence |
|---|---:|---|---|
| nyt3 | 5,190 | negative / neutral / positive: 911 / 3,770 / 509 (18 / 73 / 10 %) | NYT editorial snippets rated by 20 people (Hutto & Gilbert, ICWSM 2014), in the `vaderSentiment==3.3.2` sdist on PyPI, MIT licence; mean rating < -1 negative, > 1 positive |
| movies5 | 10,605 | 5 grades, awful / negative / neutral / positive / excellent: 1,904 / 3,157 / 548 / 2,809 / 2,187 | movie review snippets from the same sdist, MIT; mean rating cut at -2, -0.5, 0.5, 2 |
| reviews-imb | 1,331 | positive / neutral / negative: 799 / 373 / 159 (60 / 28 / 12 %) | the course's bench/data/reviews.csv, subsampled (seed 0) |

For each set, seed and setting (a list of finetune flags over its defaults; "defaults" = none): `labkit finetune
--data_name SET.csv --text_template "{text} -> {label}"` in a fresh process, timed as the learner waits for it, then
label scoring on labkit's test split (what `labkit evaluate --split test` does). It prints one row per run: steps,
whole-command minutes, test accuracy and macro-F1 with 95% bootstrap intervals, the majority baseline's accuracy and
macro-F1, and whether the predictions collapsed (labkit.evaluate.collapse). Results go into docs/benchmarks.md.
"""

import argparse
import csv
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from csv_time_to_accuracy import flags_for, run_finetune  # noqa: E402  (the sibling bench's CLI runner)

from labkit import data, evaluate, models  # noqa: E402
from labkit.cache import labkit_home  # noqa: E402

TEMPLATE = "{text} -> {label}"
VADER = "vaderSentiment==3.3.2"
# what finetune says that the table does not show: printed under each run's row (on stderr)
SAID = ("time budget", "balanced classes", "validation (", "  accuracy", "  recall", "WARNING", "defaults for")
GRADES = ["awful", "negative", "neutral", "positive", "excellent"]   # label scoring: each starts with its own token


def sets_dir() -> Path:
    """Where --prepare writes the bench's CSVs."""
    return labkit_home() / "bench-data" / "own"


def vader_files(tmp: Path) -> Path:
    """Download the vaderSentiment sdist from PyPI (no install) and unpack its ICWSM 2014 ground truth."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    VADER, "-d", str(tmp)], check=True)
    sdist = next(tmp.glob("vaderSentiment-*.tar.gz"))
    with tarfile.open(sdist) as outer:
        outer.extractall(tmp, filter="data")
    inner = next(tmp.glob("vaderSentiment-*/additional_resources/hutto_ICWSM_2014.tar.gz"))
    with tarfile.open(inner) as archive:
        archive.extractall(tmp, filter="data")
    return tmp / "hutto_ICWSM_2014"


def rated_rows(path: Path, label_of) -> list[dict]:
    """The ground-truth file's rows (id TAB mean rating TAB text) as {text, label}."""
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip():
            rows.append({"text": " ".join(parts[2].split()), "label": label_of(float(parts[1]))})
    return rows


def three_way(score: float) -> str:
    return "negative" if score < -1 else "positive" if score > 1 else "neutral"


def five_way(score: float) -> str:
    return GRADES[int(np.searchsorted([-2, -0.5, 0.5, 2], score, side="right"))]


def imbalanced(rows: list[dict], shares: dict, seed: int = 0) -> list[dict]:
    """A subsample of ``rows`` with the given label shares, as large as the scarcest label allows."""
    by_label = {label: [r for r in rows if r["label"] == label] for label in shares}
    total = int(min(len(by_label[label]) / share for label, share in shares.items()))
    rng = random.Random(seed)
    picked = [r for label, share in shares.items() for r in rng.sample(by_label[label], int(total * share))]
    rng.shuffle(picked)
    return picked


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def prepare() -> None:
    """Write every bench set's CSV into :func:`sets_dir` and print its label counts."""
    with tempfile.TemporaryDirectory(prefix="labkit-own-data-") as tmp:
        truth = vader_files(Path(tmp))
        sets = {"nyt3": rated_rows(truth / "nytEditorialSnippets_GroundTruth.txt", three_way),
                "movies5": rated_rows(truth / "movieReviewSnippets_GroundTruth.txt", five_way)}
    with (HERE / "data" / "reviews.csv").open(encoding="utf-8") as f:
        reviews = list(csv.DictReader(f))
    sets["reviews-imb"] = imbalanced(reviews, {"positive": 0.60, "neutral": 0.28, "negative": 0.12})
    for name, rows in sets.items():
        counts = {label: sum(r["label"] == label for r in rows) for label in sorted({r["label"] for r in rows})}
        print(f"{write_csv(rows, sets_dir() / f'{name}.csv')}: {len(rows)} rows, {counts}")


def test_predictions(task, adapter_dir: str) -> tuple[list[str], list[str]]:
    """Gold labels and the adapter's label-scored predictions on the test split."""
    from peft import PeftModel

    base, tok = models.load_base()
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    records = task.split("test", "--split")
    prompts = [p["prompt"] for p in task.pairs(records)]
    scored, prefix = evaluate.label_scoring_setup(tok, task, prompts)
    return [str(r[task.target]).strip() for r in records], evaluate.classify(model, tok, scored, task.labels, prefix)


def macro_f1_interval(gold, pred, labels, n_boot: int = 1000) -> tuple[float, float]:
    """95% bootstrap interval of macro-F1 over test examples."""
    rng = np.random.default_rng(0)
    gold, pred = np.array(gold), np.array(pred)
    values = [evaluate.classification_report(gold[i], pred[i], labels)["macro_f1"]
              for i in (rng.integers(0, len(gold), len(gold)) for _ in range(n_boot))]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def one_row(name: str, seed: int, setting: str, run: dict, task, gold, pred) -> dict:
    """A table row: the run, test accuracy and macro-F1 with intervals, the majority baseline, collapse."""
    report = evaluate.classification_report(gold, pred, task.labels)
    correct = [g == p for g, p in zip(gold, pred)]
    low, high = evaluate.bootstrap_ci(correct, seed=0)
    f1_low, f1_high = macro_f1_interval(gold, pred, task.labels)
    majority = evaluate.majority_baseline(gold, task.labels)
    return {"set": name, "seed": seed, "setting": setting, "steps": run["steps"], "minutes": run["wall s"] / 60,
            "accuracy": f"{report['accuracy']:.3f} [{low:.3f}, {high:.3f}]",
            "macro-F1": f"{report['macro_f1']:.3f} [{f1_low:.3f}, {f1_high:.3f}]",
            "majority acc / F1": f"{majority['accuracy']:.3f} / {majority['macro_f1']:.3f}",
            "collapsed": "yes" if evaluate.collapse(report, pred) else "no"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", action="store_true", help="build the sets, then stop")
    p.add_argument("--sets", nargs="+", default=["nyt3", "movies5", "reviews-imb"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", default=["defaults"])
    a = p.parse_args()
    if a.prepare:
        return prepare()
    rows = []
    with tempfile.TemporaryDirectory(prefix="labkit-own-data-") as tmp:
        for name in a.sets:
            path = sets_dir() / f"{name}.csv"
            if not path.is_file():
                sys.exit(f"{path} is missing: run python bench/own_data.py --prepare first")
            task = data.load_task(str(path), TEMPLATE)
            for seed in a.seeds:
                for setting in a.settings:
                    flags = flags_for(setting, len(task.split("train", "train")))
                    run = run_finetune(path, TEMPLATE, flags, seed, Path(tmp) / "run")
                    rows.append(one_row(name, seed, setting, run, task, *test_predictions(task, run["adapter"])))
                    print(json.dumps(rows[-1]), flush=True)
                    said = [line for line in run["stdout"].splitlines() if line.startswith(SAID)]
                    print("\n".join(f"  | {line}" for line in said), file=sys.stderr, flush=True)
    import pandas as pd

    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
