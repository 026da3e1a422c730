"""The README's lesson table, generated from what the repository holds.

    python docs/lesson_table.py                    # print the table (markdown)
    python docs/lesson_table.py --check README.md  # exit 1, naming the row, if README's table differs
    python docs/lesson_table.py --write README.md  # replace README's table with this one

--check and --write also check or write each lesson's **Time:** line, the second line of its
title cell, from the same numbers: reading minutes and compute minutes on a slow and a fast CPU.

One row per notebook in notebooks/ (only lessons that exist). Reading minutes: the words of the
lesson's markdown and code cells / 200, rounded up. Compute minutes: the quick profile's minutes
in lesson_times.json (what `make course --save-times` recorded) on a slow laptop CPU (the
"AVX2, no native bf16" kind) and a fast one (the "AMX" kind); "—" where that kind has no
measurement. The Colab links use pyproject.toml's `[project.urls] Repository`, the one place the
repository's URL is set. README embeds the table between the two markers below.

Standard library and nbformat only: it does not import labkit.
"""

import argparse
import math
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- lesson-table -->", "<!-- /lesson-table -->"
SLOW, FAST, PROFILE = "AVX2, no native bf16", "AMX", "quick profile"
WORDS_PER_MINUTE = 200

# lesson number -> (short title, what you will learn, one line). A number without a notebook is not listed.
LESSONS = {
    "00": ("Setup", "check your machine, load the base model offline, get a first chat reply through its chat template"),
    "01": ("Why fine-tune?", "zero-shot vs few-shot prompting vs a LoRA fine-tune on one task: accuracy, prompt tokens, "
           "latency; when fine-tuning is worth it"),
    "02": ("LoRA", "LoRA written from scratch and with PEFT, parameter counts, a run on recipe extraction, the adapter "
           "saved, reloaded and merged"),
    "03": ("QLoRA", "NF4 and double quantisation by hand; QLoRA vs LoRA: loss, time per step, memory; when to choose it"),
    "04": ("Evaluation", "metrics beyond accuracy, intervals, paired tests, metrics that mislead, leakage, "
           "a human review sheet"),
    "05": ("Overfitting", "overfitting on the curves, then five fixes measured: early stopping, dropout, weight decay, "
           "lower rank, more data"),
    "06": ("ONNX deployment", "merge and export to ONNX (fp32, int4), prove parity, measure accuracy, size and speed, "
           "stream a chat"),
    "07": ("Multi-adapter serving", "two adapters on one base, picked per request in PEFT and ONNX; disk, memory, "
           "speed; adapters refused at load time"),
    "08": ("Your own task, end to end", "your own CSV: data checks, a prompt baseline, an Optuna search, forgetting, "
           "an int4 export, a third adapter"),
    "09": ("Beyond imitation", "preference pairs from a verifier, DPO with LoRA, GRPO with the task metric as reward, "
           "a reward with a shortcut, what each costs, a further adapter"),
}


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def reading_minutes(path: Path) -> int:
    return notebook_reading_minutes(nbformat.read(path, as_version=4))


def notebook_reading_minutes(nb) -> int:
    """The words of a notebook's markdown and code cells / 200, rounded up."""
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type in ("markdown", "code"))
    return math.ceil(words / WORDS_PER_MINUTE)


def times_file(root: Path = ROOT) -> Path:
    for candidate in (root / "labkit" / "lesson_times.json", root / "labkit" / "course" / "lesson_times.json"):
        if candidate.is_file():
            return candidate
    found = sorted(root.glob("labkit/**/lesson_times.json"))
    if not found:
        sys.exit("lesson_table: no lesson_times.json under labkit/")
    return found[0]


def compute_minutes(times: dict, lesson: str, kind: str) -> str:
    """The quick profile's recorded minutes of ``lesson`` on the machine kind whose name holds ``kind``."""
    entries = times.get(lesson, {})
    for name in sorted(entries):
        if kind in name and PROFILE in name:
            return f"{entries[name]['minutes']:.1f}"
    return "—"


def repository(root: Path = ROOT) -> tuple[str, str]:
    """(owner, repo) of pyproject.toml's `[project.urls] Repository` (a GitHub URL)."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        url = tomllib.loads(text)["project"]["urls"]["Repository"]
    except ImportError:  # Python 3.10: no tomllib
        match = re.search(r'^\s*Repository\s*=\s*"([^"]+)"', text, flags=re.M)
        url = match.group(1) if match else ""
    except KeyError:
        url = ""
    match = re.fullmatch(r"https://github\.com/([^/\s]+)/([^/\s]+?)(?:\.git)?/?", url)
    if not match:
        sys.exit(f'lesson_table: pyproject.toml needs [project.urls] Repository = "https://github.com/OWNER/REPO" '
                 f"(found {url!r})")
    return match.group(1), match.group(2)


def title_of(path: Path) -> str:
    """A lesson without an entry in LESSONS: its notebook's heading, after "Lesson NN — "."""
    first = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
    return re.sub(r"^#\s*Lesson\s+\d+\s*[—-]\s*", "", first).strip()


def table(root: Path = ROOT) -> list[str]:
    import json

    times = json.loads(times_file(root).read_text(encoding="utf-8"))
    owner, repo = repository(root)
    lines = ["| # | lesson | what you will learn | reading min | compute min, slow laptop | "
             "compute min, fast laptop | Colab |",
             "|---|---|---|---:|---:|---:|---|"]
    for path in notebooks(root):
        lesson = path.name[:2]
        title, learn = LESSONS.get(lesson) or (title_of(path), "—")
        colab = f"https://colab.research.google.com/github/{owner}/{repo}/blob/main/notebooks/{path.name}"
        lines.append(f"| {lesson} | [{title}](notebooks/{path.name}) | {learn} | {reading_minutes(path)} | "
                     f"{compute_minutes(times, lesson, SLOW)} | {compute_minutes(times, lesson, FAST)} | "
                     f"[Open in Colab]({colab}) |")
    return lines


TIME_PREFIX = "**Time:**"


def time_line(nb, lesson: str, times: dict) -> str:
    """The **Time:** line lesson ``lesson`` (notebook ``nb``) opens with: its reading minutes and its
    compute minutes on a slow and a fast laptop CPU (the cell after the Colab cell shows this machine's)."""
    slow, fast = compute_minutes(times, lesson, SLOW), compute_minutes(times, lesson, FAST)
    return (f"{TIME_PREFIX} about {notebook_reading_minutes(nb)} min of reading; compute {slow} min on a slow laptop CPU "
            f"(AVX2), {fast} min on a fast one (AMX), quick profile.")


def with_time_line(source: str, line: str) -> str:
    """The title cell's ``source`` with its **Time:** line, after the heading and a blank line."""
    kept = [text for text in source.splitlines() if not text.startswith(TIME_PREFIX)]
    rest = kept[1:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    return "\n".join([kept[0], "", line, "", *rest])


def notebook_time_lines(root: Path = ROOT, write: bool = False) -> list[str]:
    """Check (or write, with ``write``) every lesson's **Time:** line; the problems found, one per lesson."""
    import json

    times = json.loads(times_file(root).read_text(encoding="utf-8"))
    problems = []
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        found = nb.cells[0].source
        nb.cells[0].source = with_time_line(found, time_line(nb, path.name[:2], times))
        line = time_line(nb, path.name[:2], times)   # the line's own words counted too
        nb.cells[0].source = with_time_line(nb.cells[0].source, line)
        if nb.cells[0].source == found:
            continue
        if write:
            nbformat.write(nb, path)
        else:
            problems.append(f"{path.name}: its title cell's {TIME_PREFIX} line is not {line!r}")
    return problems


def embedded(text: str, name: str) -> tuple[int, int]:
    """Line indexes of the two markers in ``text``; exits naming the file when they are missing."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == START)
        end = next(i for i, line in enumerate(lines) if i > start and line.strip() == END)
    except StopIteration:
        sys.exit(f"lesson_table: {name} has no table between {START} and {END}")
    return start, end


def row_key(line: str) -> str:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return cells[0] if cells else line


def differences(expected: list[str], found: list[str]) -> list[str]:
    """What differs, one message per row, naming the row by its lesson number."""
    found = [line.rstrip() for line in found if line.strip()]
    problems = []
    if found[:2] != expected[:2]:
        problems.append(f"header differs:\n  README:   {' / '.join(found[:2])}\n  expected: {expected[0]}")
    have = {row_key(line): line for line in found[2:]}
    want = {row_key(line): line for line in expected[2:]}
    for key, line in want.items():
        if key not in have:
            problems.append(f"row {key} is missing:\n  expected: {line}")
        elif have[key] != line:
            problems.append(f"row {key} differs:\n  README:   {have[key]}\n  expected: {line}")
    for key in have.keys() - want.keys():
        problems.append(f"row {key} is in the README but notebooks/ has no such lesson:\n  README:   {have[key]}")
    if not problems and [row_key(line) for line in found[2:]] != list(want):
        problems.append("the rows are in another order than notebooks/")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="README", type=Path, help="exit 1 if README's table differs")
    group.add_argument("--write", metavar="README", type=Path, help="replace README's table with this one")
    args = parser.parse_args(argv)
    expected = table()
    if not (args.check or args.write):
        print("\n".join(expected))
        return 0
    path = args.check or args.write
    text = path.read_text(encoding="utf-8")
    start, end = embedded(text, str(path))
    lines = text.splitlines()
    if args.write:
        notebook_time_lines(write=True)
        expected = table()   # the reading minutes, with the Time lines counted
        path.write_text("\n".join(lines[:start + 1] + expected + lines[end:]) + "\n", encoding="utf-8")
        print(f"{path}: lesson table written ({len(expected) - 2} lessons), and each lesson's {TIME_PREFIX} line")
        return 0
    problems = differences(expected, lines[start + 1:end]) + notebook_time_lines()
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        print(f"regenerate it: python docs/lesson_table.py --write {path}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
