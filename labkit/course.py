"""Run every lesson headless and write a summary: what an instructor runs the night before
a workshop to know each machine in the room can do the course.

    python -m labkit.course notebooks --out course-report      # or: make course

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


def machine_peaks() -> dict:
    """This machine's matmul peaks in GFLOP/s, as stored with its lesson times:
    ``{"fp32_gflops": 62.0, "bf16_gflops": 0.9}`` on a CPU (about two seconds), ``{}`` on a CUDA
    GPU (GPU lesson times are used as measured, never scaled from a CPU peak)."""
    import torch

    from . import env

    if env.device() == "cuda":
        return {}
    return {"fp32_gflops": round(env.matmul_peak(torch.float32), 1),
            "bf16_gflops": round(env.matmul_peak(torch.bfloat16), 1)}


def read_times(path: Path = TIMES_FILE) -> dict:
    """``lesson_times.json``'s content (``{lesson: {machine kind: entry}}``), or ``{}`` when there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def save_times(rows: list[dict], path: Path = TIMES_FILE, peaks: dict | None = None) -> dict:
    """Record each passed lesson's wall time for this machine kind in ``path`` (what
    :func:`lesson_time` shows at the top of each lesson), with the machine's matmul peaks
    (``peaks``, measured by :func:`machine_peaks` when not given) so that :func:`predict_times`
    can scale the minutes to another machine. ``make course`` calls it with ``--save-times``;
    one entry per machine kind, the newest measurement replacing the older."""
    times = read_times(path)
    kind, day = machine_kind(), time.strftime("%Y-%m-%d")
    peaks = machine_peaks() if peaks is None else peaks
    for r in rows:
        if r["passed"]:
            lesson = r["notebook"][:2]
            times[lesson] = {**times.get(lesson, {}),
                             kind: {"minutes": round(r["seconds"] / 60, 1), "date": day, **peaks}}
    path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
    return times


# --- predicting the lesson times on another machine -------------------------------------------

def kind_machine(kind: str) -> str:
    """The machine named in a machine kind: ``"2 CPU cores (AVX2, ...), quick profile"`` -> ``"2 CPU cores (AVX2, ...)"``."""
    return kind.rsplit(", ", 1)[0]


def kind_profile(kind: str) -> str:
    """The profile named at the end of a machine kind: ``"..., quick profile"`` -> ``"quick"``."""
    return kind.rsplit(", ", 1)[-1].removesuffix(" profile")


def is_gpu_kind(kind: str) -> bool:
    """Whether a machine kind (see :func:`machine_kind`) is a GPU: a CPU kind names its "CPU cores"."""
    return "CPU cores" not in kind


def reference_entry(entries: dict, kind_here: str, peak_here: float | None = None) -> tuple[str, dict] | None:
    """The recorded measurement of one lesson to predict this machine from, as ``(kind, entry)``;
    ``None`` when no entry fits. ``entries`` maps machine kinds to ``{"minutes", "date",
    "fp32_gflops"?}`` (one lesson of ``lesson_times.json``).

    Only entries of the same profile and the same side (CPU or GPU) as ``kind_here`` count. Among
    them: the same machine kind first; then one with a recorded fp32 peak (it can be scaled),
    the nearest in peak to ``peak_here`` (by ratio); then, without peaks, the same CPU
    capability, then the same number of cores."""
    profile, gpu = kind_profile(kind_here), is_gpu_kind(kind_here)
    here_where = kind_machine(kind_here)

    def nearness(item):
        kind, entry = item
        peak = entry.get("fp32_gflops")
        scalable = bool(peak) and bool(peak_here)
        where = kind_machine(kind)
        distance = abs(math.log(peak / peak_here)) if scalable else 0.0
        same_capability = where.partition("(")[2] == here_where.partition("(")[2]
        same_cores = where.split(" ", 1)[0] == here_where.split(" ", 1)[0]
        return (kind != kind_here, not scalable, distance, not same_capability, not same_cores, kind)

    fits = [(k, e) for k, e in entries.items() if kind_profile(k) == profile and is_gpu_kind(k) == gpu]
    return min(fits, key=nearness) if fits else None


def predict_times(peak_here: float | None, times: dict | Path | None = None, *,
                  kind_here: str | None = None, slot: float | None = None) -> list[dict]:
    """Each lesson's expected minutes on this machine, from the minutes ``make course`` recorded.

    The model is simple and says so: a lesson's time scales with the fp32 matmul speed,
    ``predicted = recorded minutes x (recorded machine's fp32 peak / peak_here)`` (the course
    trains in fp32 on a CPU, and training dominates the lessons). The recorded entry is chosen by
    :func:`reference_entry`. Where that entry has no peak (or ``peak_here`` is ``None``, as on a
    GPU), its minutes are given as measured, with ``scaled`` false and a note that says so.

    ``times`` is ``lesson_times.json``'s content or path (default: the package's file); ``kind_here``
    defaults to :func:`machine_kind`. Returns one dict per lesson: ``lesson``, ``reference``
    (machine kind or ``None``), ``recorded``, ``reference_gflops``, ``minutes`` (the expectation
    here, ``None`` when nothing fits), ``scaled``, ``note`` and ``over_slot`` (``minutes > slot``)."""
    times = TIMES_FILE if times is None else times
    if isinstance(times, (str, Path)):
        times = read_times(times)
    kind_here = machine_kind() if kind_here is None else kind_here
    rows = []
    for lesson in sorted(times):
        found = reference_entry(times[lesson], kind_here, peak_here)
        row = {"lesson": lesson, "reference": None, "recorded": None, "reference_gflops": None,
               "minutes": None, "scaled": False, "note": "", "over_slot": False}
        if found is None:
            row["note"] = (f"not measured on a GPU ({kind_profile(kind_here)} profile): the CPU times do not apply"
                           if is_gpu_kind(kind_here) else
                           f"not measured on a CPU in the {kind_profile(kind_here)} profile")
        else:
            kind, entry = found
            peak = entry.get("fp32_gflops")
            row.update(reference=kind, recorded=entry["minutes"], reference_gflops=peak)
            if peak and peak_here:
                row.update(minutes=round(entry["minutes"] * peak / peak_here, 1), scaled=True,
                           note=f"scaled by the fp32 peaks {peak:g} / {peak_here:.0f} GFLOP/s")
            else:
                row["minutes"] = entry["minutes"]
                row["note"] = ("as measured on that GPU (GPU times are not scaled)" if is_gpu_kind(kind)
                               else "as measured, not scaled: no matmul peak recorded for that machine"
                               if not peak else "as measured, not scaled: no peak measured here")
        row["over_slot"] = slot is not None and row["minutes"] is not None and row["minutes"] > slot
        rows.append(row)
    return rows


def lesson_time(lesson: str, path: Path = TIMES_FILE):
    """How long lesson ``lesson`` ("01") takes, as ``make course`` measured it on each kind of machine
    (shown at the top of every lesson)."""
    from IPython.display import Markdown

    measured = read_times(path).get(lesson, {})
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
