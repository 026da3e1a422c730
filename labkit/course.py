"""Run every lesson headless and write a summary: what an instructor runs the night before
a workshop to know each machine in the room can do the course.

    python -m labkit.course notebooks --out course-report      # or: make course

For each notebook: passed or failed, wall time, and the headline numbers the lesson
measured (each lesson calls :func:`record` with them). Writes the executed notebooks,
``summary.json`` and ``summary.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

METRICS_ENV = "LABKIT_COURSE_METRICS"
TIMES_FILE = Path(__file__).with_name("lesson_times.json")  # measured lesson times, per machine kind
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colour codes in a kernel's traceback


def _update_metrics(update: dict) -> None:
    """Merge ``update`` into the running lesson's metrics file (under ``make course``), under its
    lock and through a temporary file, so a crash or a second writer never leaves half a file."""
    path = os.environ.get(METRICS_ENV)
    if not path:
        return
    from .atomic import atomic_file, locked

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        old = json.loads(path.read_text()) if path.is_file() else {}
        for key, value in update.items():
            old[key] = {**old.get(key, {}), **value} if isinstance(value, dict) else value
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(old, indent=2))


def record(**numbers) -> dict:
    """Record a lesson's headline numbers (``record(accuracy=0.91, minutes=3.2)``).

    Under ``make course`` they go into the summary; in a normal session this just returns
    them, so the call is harmless anywhere."""
    clean = {k: (round(float(v), 4) if isinstance(v, (int, float)) else v) for k, v in numbers.items()}
    _update_metrics(clean)
    return clean


def claim(statement: str, measured: float, *, at_least: float | None = None,
          at_most: float | None = None) -> float:
    """Check one of the lesson's claims on a number the lesson just measured, and show its margin.

        claim("LoRA beats the best prompt (paired 95% lower bound, points)", 100 * low, at_least=15)

    prints ``✓ LoRA beats ...: 30.1 >= 15 (margin 15.1)`` and returns the margin; when the claim
    does not hold it raises ``AssertionError`` with the same line. Give both bounds for a band
    (the margin is then the distance to the nearer edge). A claim's threshold should sit further
    from the measured value than the value moves between seeds: ``bench/course_margins.py``
    re-runs the lessons with other ``LABKIT_SEED`` values and prints every claim's margins."""
    if at_least is None and at_most is None:
        raise ValueError("claim() needs at_least=, at_most= or both (a band).")
    measured = float(measured)
    edges = [(measured - at_least, f">= {at_least:.4g}")] if at_least is not None else []
    edges += [(at_most - measured, f"<= {at_most:.4g}")] if at_most is not None else []
    margin, _ = min(edges)
    bound = " and ".join(text for _, text in edges)
    holds = margin >= 0 and not math.isnan(margin)
    line = f"{'✓' if holds else '✗'} {statement}: {measured:.4g} {bound} (margin {margin:.3g})"
    _update_metrics({"claims": {statement: {"measured": round(measured, 6), "bound": bound,
                                            "margin": round(margin, 6)}}})
    if not holds:
        raise AssertionError(line)
    print(line)
    return margin


def machine_kind() -> str:
    """The machine a lesson time was measured on, in words: "2 CPU cores (AVX2, no native bf16),
    quick profile" or "Tesla T4, full profile"."""
    import torch

    from . import env

    where = (torch.cuda.get_device_name(0) if env.device() == "cuda"
             else f"{env.cpu_cores()} CPU cores ({env.cpu_capability()})")
    return f"{where}, {env.profile()} profile"


def save_times(rows: list[dict], path: Path = TIMES_FILE) -> dict:
    """Record each passed lesson's wall time for this machine kind in ``path`` (what
    :func:`lesson_time` shows at the top of each lesson). ``make course`` calls it with
    ``--save-times``; one entry per machine kind, the newest measurement replacing the older."""
    times = json.loads(path.read_text()) if path.is_file() else {}
    kind, day = machine_kind(), time.strftime("%Y-%m-%d")
    for r in rows:
        if r["passed"]:
            lesson = r["notebook"][:2]
            times[lesson] = {**times.get(lesson, {}), kind: {"minutes": round(r["seconds"] / 60, 1), "date": day}}
    path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
    return times


def lesson_time(lesson: str, path: Path = TIMES_FILE):
    """How long lesson ``lesson`` ("01") takes, as ``make course`` measured it on each kind of machine
    (shown at the top of every lesson)."""
    from IPython.display import Markdown

    measured = json.loads(path.read_text()).get(lesson, {}) if path.is_file() else {}
    if not measured:
        return Markdown("**Time:** not measured yet (`make course` records it).")
    parts = [f"about **{m['minutes']:g} min** on {kind} ({m['date']})" for kind, m in measured.items()]
    gpu = "" if any("CPU" not in kind for kind in measured) else " Not yet measured on a GPU."
    return Markdown("**Time:** " + "; ".join(parts) + f", measured by `make course`.{gpu}")


def run_notebook(path: Path, out_dir: Path, timeout: int = 1800) -> dict:
    """Execute one notebook on a fresh kernel; returns its summary row."""
    import nbformat
    from nbclient import NotebookClient

    # absolute: the kernel runs in the notebook's folder, not in ours
    metrics_file = (Path(out_dir) / f"{path.stem}.metrics.json").resolve()
    metrics_file.unlink(missing_ok=True)
    os.environ[METRICS_ENV] = str(metrics_file)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as e:  # a failing cell: keep going with the next lesson
        text = ANSI.sub("", str(e)).strip()
        error = f"{type(e).__name__}: {text.splitlines()[-1] if text else ''}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {"notebook": path.name, "passed": error is None, "seconds": round(seconds, 1),
            "metrics": metrics, "error": error}


def to_markdown(rows: list[dict]) -> str:
    lines = ["| lesson | result | wall time | headline numbers |", "|---|---|---|---|"]
    for r in rows:
        nums = ", ".join(f"{k}={v}" for k, v in r["metrics"].items() if k != "claims") or "-"
        result = "passed" if r["passed"] else f"FAILED ({r['error']})"
        lines.append(f"| {r['notebook']} | {result} | {r['seconds'] / 60:.1f} min | {nums} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="?", default="notebooks")
    p.add_argument("--out", default="course-report")
    p.add_argument("--save-times", action="store_true",
                   help=f"record each lesson's wall time on this machine kind in {TIMES_FILE.name} (shown in the lessons)")
    args = p.parse_args(argv)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for nb in sorted(Path(args.notebooks).glob("[0-9][0-9]_*.ipynb")):
        print(f"running {nb.name} ...", flush=True)
        row = run_notebook(nb, out_dir)
        print(f"  {'passed' if row['passed'] else 'FAILED'} in {row['seconds']:.0f} s {row['metrics']}", flush=True)
        rows.append(row)
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    (out_dir / "summary.md").write_text(to_markdown(rows))
    if args.save_times:
        save_times(rows)
    print(to_markdown(rows))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
