"""How much room does each lesson's check have? Run the lessons under several seeds and print a margin table.

    python bench/course_margins.py                       # seeds 0 1 2, lessons 01-09
    python bench/course_margins.py --seeds 3 4 --lessons 04 05

Every check a lesson makes on a measured number goes through ``labkit.course.claims.claim``, which records
the number, its bound and its margin (how far the number is from failing). This script runs each
lesson headless (as ``make course`` does) once per ``LABKIT_SEED``: every training run, bootstrap
resample and sampled answer then draws other random numbers. It prints, per claim, the measured
value for each seed, the seed-to-seed spread (max - min) and the smallest margin, and flags a claim
whose smallest margin is below its spread: one more seed could fail it. For whoever changes a lesson;
not part of CI (a full run trains every lesson once per seed: about an hour per seed on 2 slow cores).

Results are kept per seed and lesson in ``--out`` (``seed-N/NN_lesson.row.json`` and the executed
notebook), so running the same command again resumes an interrupted run and re-runs failed lessons only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labkit.course.runner import run_notebook  # noqa: E402


def run_seed(seed: int, notebooks: list[Path], out: Path) -> dict:
    """Run ``notebooks`` with ``LABKIT_SEED=seed`` (skipping lessons already done for that seed);
    returns ``{lesson: row}`` with each row's claims."""
    seed_dir = out / f"seed-{seed}"
    seed_dir.mkdir(parents=True, exist_ok=True)
    os.environ["LABKIT_SEED"] = str(seed)       # the kernels inherit it
    rows = {}
    for nb in notebooks:
        done = seed_dir / f"{nb.stem}.row.json"
        if done.is_file():
            rows[nb.stem] = json.loads(done.read_text())
            continue
        print(f"seed {seed}: running {nb.name} ...", flush=True)
        row = run_notebook(nb, seed_dir)
        print(f"  {'passed' if row['passed'] else 'FAILED: ' + str(row['error'])} in {row['seconds']:.0f} s", flush=True)
        if row["passed"]:  # a failed lesson runs again next time (after the fix)
            done.write_text(json.dumps(row, indent=2))
        rows[nb.stem] = row
    return rows


def margin_table(by_seed: dict) -> list[dict]:
    """One row per (lesson, claim): the measured value and margin for each seed, the spread, and
    whether the smallest margin exceeds the spread."""
    seeds = sorted(by_seed)
    table = {}
    for seed in seeds:
        for lesson, row in by_seed[seed].items():
            for claim, c in row["metrics"].get("claims", {}).items():
                entry = table.setdefault((lesson, claim), {"lesson": lesson, "claim": claim, "bound": c["bound"],
                                                           "measured": {}, "margin": {}})
                entry["measured"][seed], entry["margin"][seed] = c["measured"], c["margin"]
    rows = []
    for entry in table.values():
        values = list(entry["measured"].values())
        entry["spread"] = max(values) - min(values)
        entry["min_margin"] = min(entry["margin"].values())
        entry["sound"] = len(values) == len(seeds) and entry["min_margin"] > entry["spread"]
        rows.append(entry)
    return sorted(rows, key=lambda e: e["lesson"])


def to_markdown(rows: list[dict], seeds: list[int]) -> str:
    head = "| lesson | claim | bound | " + " | ".join(f"seed {s}" for s in seeds) + " | spread | min margin | margin > spread |"
    lines = [head, "|" + "---|" * (len(seeds) + 6)]
    for r in rows:
        values = " | ".join(f"{r['measured'][s]:.4g}" if s in r["measured"] else "not reached" for s in seeds)
        lines.append(f"| {r['lesson'][:2]} | {r['claim']} | {r['bound']} | {values} | {r['spread']:.3g} | "
                     f"{r['min_margin']:.3g} | {'yes' if r['sound'] else '**NO**'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lessons", nargs="+", default=["01", "02", "03", "04", "05", "06", "07", "08", "09"],
                   help="lesson numbers, e.g. 01 04")
    p.add_argument("--notebooks", default=str(ROOT / "notebooks"))
    p.add_argument("--out", default=str(ROOT / "course-report" / "margins"))
    a = p.parse_args(argv)
    notebooks = [nb for nb in sorted(Path(a.notebooks).glob("[0-9][0-9]_*.ipynb")) if nb.name[:2] in a.lessons]
    if not notebooks:
        p.error(f"no lesson matches --lessons {' '.join(a.lessons)} in {a.notebooks}")
    out = Path(a.out).resolve()
    by_seed = {seed: run_seed(seed, notebooks, out) for seed in a.seeds}
    failed = [f"seed {s}: {lesson}" for s, rows in by_seed.items() for lesson, r in rows.items() if not r["passed"]]
    rows = margin_table(by_seed)
    md = to_markdown(rows, a.seeds)
    (out / "margins.md").write_text(md)
    (out / "margins.json").write_text(json.dumps(rows, indent=2, default=str))
    print(md)
    print("failed lessons:", ", ".join(failed) if failed else "none")
    print("claims whose smallest margin is not above their seed-to-seed spread:",
          sum(not r["sound"] for r in rows), "of", len(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
