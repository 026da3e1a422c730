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
import os
import sys
import time
from pathlib import Path

METRICS_ENV = "LABKIT_COURSE_METRICS"


def record(**numbers) -> dict:
    """Record a lesson's headline numbers (``record(accuracy=0.91, minutes=3.2)``).

    Under ``make course`` they go into the summary; in a normal session this just returns
    them, so the call is harmless anywhere."""
    clean = {k: (round(float(v), 4) if isinstance(v, (int, float)) else v) for k, v in numbers.items()}
    path = os.environ.get(METRICS_ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
        Path(path).write_text(json.dumps({**old, **clean}, indent=2))
    return clean


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
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, out_dir / path.name)
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {"notebook": path.name, "passed": error is None, "seconds": round(seconds, 1),
            "metrics": metrics, "error": error}


def to_markdown(rows: list[dict]) -> str:
    lines = ["| lesson | result | wall time | headline numbers |", "|---|---|---|---|"]
    for r in rows:
        nums = ", ".join(f"{k}={v}" for k, v in r["metrics"].items()) or "-"
        result = "passed" if r["passed"] else f"FAILED ({r['error']})"
        lines.append(f"| {r['notebook']} | {result} | {r['seconds'] / 60:.1f} min | {nums} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="?", default="notebooks")
    p.add_argument("--out", default="course-report")
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
    print(to_markdown(rows))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
