"""Run every lesson headless and write a summary: what an instructor runs the night before
a workshop to know each machine in the room can do the course.

    python -m labkit.course.runner notebooks --out course-report      # or: make course

For each notebook: passed or failed, wall time, and the headline numbers the lesson
measured (each lesson calls :func:`labkit.course.claims.record` with them). Writes the executed
notebooks, each also as a web page (nbconvert), ``summary.json``, ``summary.md`` and
``index.html`` (each lesson's result, claims and numbers, linking to its page) into ``--out``.

``--compare FIRST SECOND`` compares two runs' ``summary.json`` (a second ``make course`` in the same
labkit home must record the same claims: see :func:`compare_runs`).

``--save-times`` keeps each lesson's minutes in ``lesson_times.json`` with this machine's matmul
peak; :func:`labkit.course.lesson_times.predict_times` scales them to another machine (``labkit doctor`` prints the table).
"""

from __future__ import annotations

import argparse
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
        "headline numbers": ", ".join(f"{k}={v}" for k, v in r["metrics"].items()
                                         if k not in ("claims", "readings")) or "-",
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
pre.error { background: #fff3f3; border: 1px solid #f0c0c0; padding: .6em; white-space: pre-wrap; }
"""


def lesson_page(notebook: Path) -> Path | None:
    """The executed lesson as a web page beside it (``NN_name.html``), outputs and figures included:
    nbconvert's ``HTMLExporter``, the tool Jupyter itself exports with. None when the notebook is
    missing (a lesson that never ran)."""
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    if not notebook.is_file():
        return None
    body, _ = HTMLExporter().from_filename(str(notebook))
    page = notebook.with_suffix(".html")
    page.write_text(body, encoding="utf-8")
    return page


def _holds(recorded_claim: dict) -> bool:
    """Whether a recorded claim held: its margin is a number >= 0 (NaN never holds)."""
    margin = recorded_claim.get("margin")
    return isinstance(margin, (int, float)) and margin >= 0


def claims_html(claims: dict) -> str:
    """The lesson's claims (what :func:`labkit.course.claims.claim` recorded) as an HTML table
    (pandas, escaped): held (✓/✗), statement, measured, bound, margin."""
    import pandas as pd

    if not claims:
        return "<p>No claims recorded.</p>"
    table = pd.DataFrame([{"": "✓" if _holds(c) else "✗", "claim": statement, "measured": c.get("measured"),
                           "bound": c.get("bound", ""), "margin": c.get("margin")} for statement, c in claims.items()])
    return table.to_html(index=False, escape=True, float_format=lambda v: f"{v:.4g}", na_rep="-")


def numbers_html(metrics: dict) -> str:
    """The lesson's recorded headline numbers (what :func:`labkit.course.claims.record` recorded)
    as an HTML table (pandas, escaped)."""
    import pandas as pd

    numbers = {k: v for k, v in metrics.items() if k not in ("claims", "readings")}
    if not numbers:
        return "<p>No numbers recorded.</p>"
    table = pd.DataFrame({"recorded": list(numbers), "value": [str(v) for v in numbers.values()]})
    return table.to_html(index=False, escape=True)


def lesson_html(row: dict, out_dir: Path) -> str:
    """One lesson's section: result and minutes, its error (without terminal colour codes), its
    claims and numbers, and a link to the executed lesson's page (:func:`lesson_page`)."""
    name = html.escape(row["notebook"])
    result = "<span class='ok'>passed</span>" if row["passed"] else "<span class='bad'>FAILED</span>"
    error = (f"<pre class='error'>{html.escape(ANSI.sub('', str(row['error'])))}</pre>"
             if row.get("error") else "")
    page = lesson_page(Path(out_dir) / row["notebook"])
    link = (f"<p><a href='{html.escape(page.name)}'>the executed lesson, with its outputs and figures</a></p>"
            if page else "<p>The lesson did not run: no executed notebook.</p>")
    metrics = row.get("metrics") or {}
    return (f"<section id='{name}' class='{'passed' if row['passed'] else 'failed'}'>"
            f"<h2>{name}: {result} in {row['seconds'] / 60:.1f} min</h2>{error}{link}"
            f"{readings_html(metrics.get('readings', []))}"
            f"{claims_html(metrics.get('claims', {}))}{numbers_html(metrics)}</section>")


def readings_html(readings: list) -> str:
    """The lesson's Readings (what :func:`labkit.course.claims.reading` printed) as an escaped list."""
    if not readings:
        return ""
    return "<ul class='readings'>" + "".join(f"<li>{html.escape(str(r))}</li>" for r in readings) + "</ul>"


def to_html(rows: list[dict], out_dir: Path, machine: str = "") -> str:
    """The report's front page (inline style, no external files): an overview table, then one
    section per lesson that links to its executed page."""
    def claim_count(r):
        claims = (r.get("metrics") or {}).get("claims", {})
        return f"{sum(_holds(c) for c in claims.values())}/{len(claims)}"

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


def compare_runs(first: list[dict], second: list[dict]) -> list[dict]:
    """What differs between two runs of the course (two ``summary.json`` rows lists): per lesson,
    whether it passed, each claim's measured value and whether it held, and each Reading. Returns
    one row per difference: lesson, what, first run, second run, and ``changes_a_claim`` (True where
    a lesson or a claim passed in one run and not in the other). Readings of timings are expected to
    differ in their digits; a claim that flips is what a second run must never show."""
    by_name = {row["notebook"]: row for row in second}
    rows = []
    for one in first:
        other = by_name.get(one["notebook"], {})
        lesson = one["notebook"]
        if one.get("passed") != other.get("passed"):
            rows.append({"lesson": lesson, "what": "passed", "first": one.get("passed"), "second": other.get("passed"),
                         "changes_a_claim": True})
        a, b = one.get("metrics") or {}, other.get("metrics") or {}
        claims_a, claims_b = a.get("claims", {}), b.get("claims", {})
        for statement in sorted(set(claims_a) | set(claims_b)):
            ca, cb = claims_a.get(statement, {}), claims_b.get(statement, {})
            if ca.get("measured") != cb.get("measured") or _holds(ca) != _holds(cb):
                rows.append({"lesson": lesson, "what": f"claim: {statement}", "first": ca.get("measured"),
                             "second": cb.get("measured"), "changes_a_claim": _holds(ca) != _holds(cb)})
        readings_a, readings_b = a.get("readings", []), b.get("readings", [])
        for i in range(max(len(readings_a), len(readings_b))):
            ra = readings_a[i] if i < len(readings_a) else None
            rb = readings_b[i] if i < len(readings_b) else None
            if ra != rb:
                rows.append({"lesson": lesson, "what": f"reading {i + 1}", "first": ra, "second": rb,
                             "changes_a_claim": False})
    return rows


def print_comparison(first_file: Path, second_file: Path) -> int:
    """Print :func:`compare_runs` of two summary.json files as a table; 1 if a claim or lesson flipped."""
    import pandas as pd

    rows = compare_runs(json.loads(Path(first_file).read_text()), json.loads(Path(second_file).read_text()))
    if not rows:
        print("The two runs recorded the same claims, values and readings.")
        return 0
    print(pd.DataFrame(rows).to_markdown(index=False))
    flipped = sum(r["changes_a_claim"] for r in rows)
    print(f"\n{len(rows)} differences; {flipped} change whether a lesson or claim passed.")
    return 1 if flipped else 0


def main(argv=None) -> int:
    """`python -m labkit.course.runner notebooks --out course-report`: run every lesson, write the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="?", default="notebooks")
    p.add_argument("--out", default="course-report")
    p.add_argument("--save-times", action="store_true",
                   help=f"record each lesson's wall time on this machine kind in {TIMES_FILE.name} (shown in the lessons)")
    p.add_argument("--compare", nargs=2, metavar=("FIRST", "SECOND"), type=Path,
                   help="instead of running: compare two runs' summary.json (claims, values, readings)")
    args = p.parse_args(argv)
    if args.compare:
        return print_comparison(*args.compare)
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
