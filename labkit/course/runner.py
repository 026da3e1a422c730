"""Run every lesson headless and write a summary: what an instructor runs the night before
a workshop to know each machine in the room can do the course.

    python -m labkit.course.runner notebooks --out course-report      # or: make course

For each notebook: passed or failed, wall time, and the headline numbers the lesson
measured (each lesson calls :func:`record` with them). Writes the executed notebooks,
``summary.json``, ``summary.md`` and ``index.html`` (one self-contained page: each lesson's
result, claims, numbers and figures) into ``--out``.

``--save-times`` keeps each lesson's minutes in ``lesson_times.json`` with this machine's matmul
peak; :func:`predict_times` scales them to another machine (``labkit doctor`` prints the table).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import html
import json
import os
import re
import sys
import time
from pathlib import Path

from labkit.course.claims import METRICS_ENV
from labkit.course.lesson_times import TIMES_FILE, machine_kind, save_times

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colour codes in a kernel's traceback
















# --- predicting the lesson times on another machine -------------------------------------------













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
    """The summary as a markdown table (pandas' ``to_markdown``): lesson, result, wall time, headline numbers."""
    import pandas as pd

    table = pd.DataFrame([{
        "lesson": r["notebook"],
        "result": "passed" if r["passed"] else f"FAILED ({r['error']})",
        "wall time": f"{r['seconds'] / 60:.1f} min",
        "headline numbers": ", ".join(f"{k}={v}" for k, v in r["metrics"].items() if k != "claims") or "-",
    } for r in rows])
    return table.to_markdown(index=False, tablefmt="pipe") + "\n"


# --- the HTML report (course-report/index.html) ----------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.25em; margin: 0 0 .5em; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .5em 0 1em; } th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; } td.bound { white-space: nowrap; }
section { border: 1px solid #ccc; border-radius: 6px; padding: 1em; margin: 1.2em 0; }
section.passed { border-left: 6px solid #2e7d32; } section.failed { border-left: 6px solid #c62828; }
.ok { color: #2e7d32; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.lesson { display: flex; flex-wrap: wrap; gap: 1.5em; } .numbers { flex: 1 1 420px; } .figures { flex: 1 1 480px; }
figure { margin: 0 0 1em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: .85em; font-family: monospace; }
pre.error { background: #fff3f3; border: 1px solid #f0c0c0; padding: .6em; white-space: pre-wrap; }
"""


def notebook_figures(path: Path) -> list[tuple[str, str]]:
    """The figures an executed notebook drew: ``(caption, base64 PNG)`` for each ``image/png``
    output, in order; the caption is the first line of the cell that drew it. Empty when the
    notebook is missing (a lesson that never ran); outputs that are not valid base64 are skipped."""
    import nbformat

    if not Path(path).is_file():
        return []
    nb = nbformat.read(path, as_version=4)
    figures = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            png = output.get("data", {}).get("image/png")
            if png is None:
                continue
            png = "".join(("".join(png) if isinstance(png, list) else str(png)).split())
            try:
                if not base64.b64decode(png, validate=True):     # only base64 characters go into the page
                    continue
            except (binascii.Error, ValueError):
                continue
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            figures.append((f"cell {index}: {first.strip()}", png))
    return figures


def _number(value) -> str:
    """A number for the report: 4 significant digits; anything else as text."""
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _holds(recorded_claim: dict) -> bool:
    """Whether a recorded claim held: its margin is a number >= 0 (NaN never holds)."""
    margin = recorded_claim.get("margin")
    return isinstance(margin, (int, float)) and margin >= 0


def claims_html(claims: dict) -> str:
    """The lesson's claims (what :func:`claim` recorded) as an HTML table: statement, measured,
    bound, margin and ✓/✗ (the claim holds when its margin is >= 0)."""
    if not claims:
        return "<p>No claims recorded.</p>"
    rows = []
    for statement, c in claims.items():
        margin, holds = c.get("margin"), _holds(c)
        rows.append(f"<tr><td class='{'ok' if holds else 'bad'}'>{'✓' if holds else '✗'}</td>"
                    f"<td>{html.escape(str(statement))}</td><td class='num'>{html.escape(_number(c.get('measured')))}</td>"
                    f"<td class='bound'>{html.escape(str(c.get('bound', '')))}</td><td class='num'>{html.escape(_number(margin))}</td></tr>")
    return ("<table><tr><th></th><th>claim</th><th>measured</th><th>bound</th><th>margin</th></tr>"
            + "".join(rows) + "</table>")


def numbers_html(metrics: dict) -> str:
    """The lesson's recorded headline numbers (what :func:`record` recorded) as an HTML table."""
    numbers = {k: v for k, v in metrics.items() if k != "claims"}
    if not numbers:
        return "<p>No numbers recorded.</p>"
    return ("<table><tr><th>recorded</th><th>value</th></tr>"
            + "".join(f"<tr><td>{html.escape(str(k))}</td><td class='num'>{html.escape(_number(v))}</td></tr>"
                      for k, v in numbers.items()) + "</table>")


def lesson_html(row: dict, out_dir: Path) -> str:
    """One lesson's section: result and minutes, its error (without terminal colour codes), its
    claims and numbers, beside the figures of its executed notebook in ``out_dir``."""
    name = html.escape(row["notebook"])
    result = "<span class='ok'>passed</span>" if row["passed"] else "<span class='bad'>FAILED</span>"
    error = (f"<pre class='error'>{html.escape(ANSI.sub('', str(row['error'])))}</pre>"
             if row.get("error") else "")
    figures = "".join(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                      for caption, png in notebook_figures(Path(out_dir) / row["notebook"]))
    metrics = row.get("metrics") or {}
    return (f"<section id='{name}' class='{'passed' if row['passed'] else 'failed'}'>"
            f"<h2>{name}: {result} in {row['seconds'] / 60:.1f} min</h2>{error}"
            f"<div class='lesson'><div class='numbers'>{claims_html(metrics.get('claims', {}))}"
            f"{numbers_html(metrics)}</div>"
            f"<div class='figures'>{figures or '<p>No figures.</p>'}</div></div></section>")


def to_html(rows: list[dict], out_dir: Path, machine: str = "") -> str:
    """The whole report as one self-contained HTML page (inline style, figures embedded as
    base64 PNG, no external files): an overview table, then one section per lesson."""
    def claim_count(r):
        claims = (r.get("metrics") or {}).get("claims", {})
        held = sum(_holds(c) for c in claims.values())
        return f"{held}/{len(claims)}"

    overview = "".join(
        f"<tr><td><a href='#{html.escape(r['notebook'])}'>{html.escape(r['notebook'])}</a></td>"
        f"<td>{'<span class=ok>passed</span>' if r['passed'] else '<span class=bad>FAILED</span>'}</td>"
        f"<td class='num'>{r['seconds'] / 60:.1f}</td><td class='num'>{claim_count(r)}</td></tr>" for r in rows)
    passed = sum(r["passed"] for r in rows)
    total = sum(r["seconds"] for r in rows) / 60
    meta = f"{passed} of {len(rows)} lessons passed, {total:.1f} min in all" + (f" on {machine}" if machine else "")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Course report</title>"
            f"<style>{STYLE}</style></head><body><h1>Course report</h1>"
            f"<p class='meta'>{html.escape(meta)}, {time.strftime('%Y-%m-%d %H:%M')}</p>"
            "<table><tr><th>lesson</th><th>result</th><th>minutes</th><th>claims held</th></tr>"
            f"{overview}</table>" + "".join(lesson_html(r, out_dir) for r in rows) + "</body></html>\n")


def write_html(rows: list[dict], out_dir: Path, machine: str = "") -> Path:
    """Write :func:`to_html` to ``out_dir/index.html`` and return its path."""
    path = Path(out_dir) / "index.html"
    path.write_text(to_html(rows, out_dir, machine), encoding="utf-8")
    return path


def main(argv=None) -> int:
    """`python -m labkit.course.runner notebooks --out course-report`: run every lesson, write the report."""
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
    print(f"report: {write_html(rows, out_dir, machine_kind())}", flush=True)
    if args.save_times:
        save_times(rows)
    print(to_markdown(rows))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
