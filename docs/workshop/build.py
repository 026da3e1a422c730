"""The workshop pack, built from the course's own sources.

    python docs/workshop/build.py                  # or: make workshop   (writes docs/workshop/build/)
    python docs/workshop/build.py --out DIR        # somewhere else
    python docs/workshop/build.py --no-pdf         # skip the cheat sheet's PDF even where Chromium is found

What it writes, and from what (nothing here is typed twice: lessons, minutes, exercises, check
messages, the rubric and the CLI's defaults are read from the files that define them, at build time):

- ``agenda-half-day.md/.html``, ``agenda-full-day.md/.html``, ``agendas.json``: which lessons, in
  course order, with minutes per lesson = reading minutes (docs/lesson_table.py: the words of the
  lesson's markdown and code cells / 200) + compute minutes on the slow laptop kind (AVX2, from
  labkit/lesson_times.json), plus the allowances and breaks in :data:`DAYS`. The half day keeps the
  lessons that fit and lists the rest for home.
- ``facilitator.md/.html``: every exercise the notebooks hold (the ``solution`` cells and the
  ``check("NN.K", ...)`` they call), its task as the notebook states it, the hand-written notes of
  docs/workshop/facilitator.md, and every line ``check`` can print for it, read from
  labkit/course/check.py.
- ``rubric.md/.html``: the capstone's rubric, extracted from the notebook that has a "rubric" heading.
- ``cheatsheet.md/.html`` (+ ``.pdf`` where Chromium is found; ``LABKIT_CHROMIUM`` names one):
  docs/workshop/cheatsheet.md with ``labkit finetune``'s defaults filled in from labkit/cli/flags.py.
- ``faq.html``, ``index.html``.

Standard library, nbformat and ``markdown`` (installed with tensorboard; a plainer renderer is used
without it). It reuses docs/lesson_table.py, labkit.course.student and labkit.course.doctor, and reads
check.py and the CLI's flags as source (``ast``): it imports neither torch nor labkit's models.
"""

from __future__ import annotations

import argparse
import ast
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT / "docs"), str(ROOT)]

import lesson_table  # noqa: E402  (docs/lesson_table.py: notebooks, reading and compute minutes)
from labkit.course import student  # noqa: E402  (how the course marks exercises and their solutions)
from labkit.course.doctor import QUICK_MINUTES_PER_LESSON  # noqa: E402  (doctor's minutes for an untimed lesson)

OUT = HERE / "build"
CHECK_PY = ROOT / "labkit" / "course" / "check.py"
FLAGS_PY = ROOT / "labkit" / "cli" / "flags.py"


# --------------------------------------------------------------------------- the days


@dataclass
class Day:
    """One agenda: its length, start time, fixed slots and breaks, and what each lesson gets on top
    of its reading and compute minutes."""

    key: str
    title: str
    minutes: int
    start: str                                     # "HH:MM"
    opening: tuple                                 # (minutes, what)
    closing: tuple                                 # (minutes, what)
    breaks: list = field(default_factory=list)     # (where in the day, 0..1, minutes, what)
    exercise_minutes: int = 0                      # per lesson, for its exercises in the room


DAYS = [
    Day("half-day", "Half day", 210, "13:30",
        opening=(20, "Arrival: install from the wheelhouse, `make doctor SLOT=20`, open lesson 00 (see instructors.md)"),
        closing=(10, "Wrap-up: what is left for home, where the worked solutions are"),
        breaks=[(0.5, 15, "Break")],
        exercise_minutes=5),
    Day("full-day", "Full day", 420, "09:00",
        opening=(20, "Arrival: install from the wheelhouse, `make doctor SLOT=20`, open lesson 00 (see instructors.md)"),
        closing=(15, "Wrap-up: questions, what to try on your own data next"),
        breaks=[(0.25, 15, "Break"), (0.5, 45, "Lunch"), (0.75, 15, "Break")],
        exercise_minutes=10),
]


def clock(start: str, minutes: float) -> str:
    h, m = (int(x) for x in start.split(":"))
    total = h * 60 + m + int(minutes)
    return f"{total // 60 % 24:02d}:{total % 60:02d}"


# --------------------------------------------------------------------------- lessons and their minutes


def lesson_title(path: Path) -> str:
    number = path.name[:2]
    return (lesson_table.LESSONS.get(number) or (lesson_table.title_of(path),))[0]


def slow_over_fast(times: dict) -> float | None:
    """The largest ratio slow kind / fast kind over the lessons measured on both (for a lesson measured
    on the fast kind only)."""
    ratios = []
    for lesson in times:
        slow, fast = (lesson_table.compute_minutes(times, lesson, kind) for kind in (lesson_table.SLOW, lesson_table.FAST))
        if slow != "—" and fast != "—" and float(fast) > 0:
            ratios.append(float(slow) / float(fast))
    return max(ratios) if ratios else None


def lessons(root: Path = ROOT) -> list[dict]:
    """One dict per notebook: number, title, file, reading and compute minutes (the slow kind), how
    compute was found, and the exercise ids."""
    times = json.loads(lesson_table.times_file(root).read_text(encoding="utf-8"))
    ratio = slow_over_fast(times)
    rows = []
    for path in lesson_table.notebooks(root):
        number = path.name[:2]
        slow = lesson_table.compute_minutes(times, number, lesson_table.SLOW)
        fast = lesson_table.compute_minutes(times, number, lesson_table.FAST)
        if slow != "—":
            compute, note = float(slow), ""
        elif fast != "—" and ratio:
            compute = round(float(fast) * ratio, 1)
            note = (f"estimated: not timed on the slow kind yet; {fast} min on the fast kind × {ratio:.2f}, the largest "
                    "slow/fast ratio recorded")
        else:
            compute = float(QUICK_MINUTES_PER_LESSON)
            note = f"not timed on any kind yet: {compute:g} min assumed, as `labkit doctor` does"
        rows.append({"lesson": number, "title": lesson_title(path), "notebook": f"notebooks/{path.name}",
                     "reading": lesson_table.reading_minutes(path), "compute": compute, "compute_note": note,
                     "exercises": [e["id"] for e in notebook_exercises(path)]})
    return rows


def lesson_minutes(lesson: dict) -> int:
    """Reading + compute, rounded up to whole minutes."""
    return math.ceil(lesson["reading"] + lesson["compute"])


# --------------------------------------------------------------------------- agendas


def plan(day: Day, all_lessons: list[dict]) -> dict:
    """The day's rows (start, minutes, kind, what) and the lessons left for home. Lessons are taken in
    course order (later ones build on earlier ones) as long as they fit; breaks go to the lesson
    boundary nearest their place in the day; what is left over is a buffer before the wrap-up."""
    fixed = day.opening[0] + day.closing[0] + sum(b[1] for b in day.breaks)
    room, taken = day.minutes - fixed, []
    for lesson in all_lessons:
        need = lesson_minutes(lesson) + day.exercise_minutes
        if need > room:
            break
        taken.append(lesson)
        room -= need
    home = all_lessons[len(taken):]

    blocks = [{"kind": "opening", "minutes": day.opening[0], "what": day.opening[1]}]
    for lesson in taken:
        blocks.append({"kind": "lesson", "lesson": lesson["lesson"], "minutes": lesson_minutes(lesson) + day.exercise_minutes,
                       "what": f"Lesson {lesson['lesson']}: {lesson['title']}", "reading": lesson["reading"],
                       "compute": lesson["compute"], "exercise_minutes": day.exercise_minutes,
                       "exercises": lesson["exercises"], "compute_note": lesson["compute_note"]})
    rows = with_breaks(blocks, day)
    buffer = day.minutes - sum(r["minutes"] for r in rows) - day.closing[0]
    if buffer > 0:
        rows.append({"kind": "buffer", "minutes": buffer, "what": "Buffer: catching up, questions, a slow laptop's runs"})
    rows.append({"kind": "closing", "minutes": day.closing[0], "what": day.closing[1]})
    elapsed = 0
    for row in rows:
        row["start"] = clock(day.start, elapsed)
        elapsed += row["minutes"]
    return {"title": day.title, "minutes": day.minutes, "start": day.start, "end": clock(day.start, day.minutes),
            "exercise_minutes": day.exercise_minutes, "rows": rows,
            "home": [{"lesson": l["lesson"], "title": l["title"], "minutes": lesson_minutes(l),
                      "exercises": l["exercises"]} for l in home]}


def with_breaks(blocks: list[dict], day: Day) -> list[dict]:
    """``blocks`` with the day's breaks, each after the block (never before the first lesson) whose end
    is nearest the break's place in the day."""
    after = []                                          # (block index, break row)
    for where, minutes, what in day.breaks:
        elapsed, best = 0, None
        for i, block in enumerate(blocks):
            elapsed += block["minutes"] + sum(b["minutes"] for j, b in after if j == i)
            first = after[-1][0] + 1 if after else 1
            if i >= first and (best is None or abs(elapsed - where * day.minutes) < best[1]):
                best = (i, abs(elapsed - where * day.minutes))
        after.append((best[0] if best else len(blocks) - 1, {"kind": "break", "minutes": minutes, "what": what}))
    rows = []
    for i, block in enumerate(blocks):
        rows += [block] + [b for j, b in after if j == i]
    return rows


def hours(minutes: int) -> str:
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def agenda_markdown(agenda: dict, out: Path = OUT) -> str:
    instructors = os.path.relpath(ROOT / "docs" / "instructors.md", out)
    lines = [f"# Workshop agenda: {agenda['title'].lower()} ({hours(agenda['minutes'])}, "
             f"{agenda['start']}–{agenda['end']})", "",
             "For the instructor running the day: which lessons, in what order, and how long each one takes on a slow "
             "laptop. Generated by `make workshop` from the notebooks and `labkit/lesson_times.json`.", "",
             "| start | min | what | reading + compute + exercises |", "|---|---:|---|---|"]
    notes = []
    for row in agenda["rows"]:
        detail = ""
        if row["kind"] == "lesson":
            star = ""
            if row["compute_note"]:
                notes.append(f"Lesson {row['lesson']}: {row['compute_note']}.")
                star = f" ({len(notes)})"
            detail = (f"{row['reading']} + {row['compute']:g}{star} + {row['exercise_minutes']} "
                      f"({', '.join(row['exercises']) or 'no exercises'})")
        what = f"**{row['what']}**" if row["kind"] == "lesson" else row["what"]
        what = what.replace("instructors.md", f"[instructors.md]({instructors})")
        lines.append(f"| {row['start']} | {row['minutes']} | {what} | {detail} |")
    lines.append(f"| {agenda['end']} | | End | |")
    lines.append("")
    if agenda["home"]:
        lines += ["## Left for home", "",
                  "These lessons did not fit; learners take them on their own, in this order, with the same notebooks "
                  "(each runs on its own, on a fresh kernel):", ""]
        lines += [f"- Lesson {h['lesson']}: {h['title']} (about {h['minutes']} min, exercises "
                  f"{', '.join(h['exercises']) or 'none'})" for h in agenda["home"]]
        lines.append("")
    else:
        lines += ["Every lesson fits: nothing is left for home. Learners with time left take the capstone (lesson 08) "
                  "through again on a CSV of their own.", ""]
    lines += ["## How the minutes are computed", "",
              "- **Reading**: the words of the lesson's markdown and code cells / 200, rounded up "
              "(`docs/lesson_table.py`, as in the README's lesson table).",
              "- **Compute**: the quick profile's minutes on the slow laptop kind (2 cores, AVX2, no native bf16) "
              "recorded in `labkit/lesson_times.json`. A lesson's slot is reading + compute, rounded up to whole minutes.",
              f"- **Exercises**: {agenda['exercise_minutes']} min per lesson in the room (an allowance, not a measurement; "
              "some exercises train or export again: see the facilitator notes).",
              "- `make doctor SLOT=20` on each laptop predicts every lesson's compute minutes there; a laptop much slower "
              "than the slow kind falls behind this plan: pair it with a faster one or run that lesson as a demo.", ""]
    lines += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- exercises


def notebook_exercises(path: Path) -> list[dict]:
    """The exercises of one lesson, in order: id, title, task text, the check call of the worked
    solution, and the cell index (solution code cells with the exercise id in their metadata)."""
    nb = nbformat.read(path, as_version=4)
    index = student.exercises_index(nb)
    if index is None:
        return []
    raw = nb.cells[index].source
    texts = student.exercise_texts(raw)
    found = []
    for i in student.solutions_section(nb):
        cell = nb.cells[i]
        if cell.cell_type != "code" or not student.is_solution(cell):
            continue
        eid = cell.metadata.get("exercise") or ""
        called = re.findall(r"""\bcheck\(\s*["'](\d\d\.\d+)["']""", cell.source)
        eid = eid or (called[0] if called else "")
        k = int(eid.split(".")[1]) if "." in eid else None
        text = texts.get(k, "")
        bold = re.search(rf"^\s*{k}\.\s+\*\*(.+?)\*\*", raw, flags=re.M) if k else None
        title = bold.group(1).rstrip(".") if bold else re.split(r"[:.?]", text, maxsplit=1)[0]
        found.append({"id": eid, "lesson": path.name[:2], "notebook": f"notebooks/{path.name}", "cell": i,
                      "title": title.strip(), "text": text, "checks": called, "call": student.check_call(cell.source)})
    return found


def all_exercises(root: Path = ROOT) -> list[dict]:
    return [e for path in lesson_table.notebooks(root) for e in notebook_exercises(path)]


# --------------------------------------------------------------------------- check's messages, read from its source


def _string_parts(node) -> list[list]:
    """The message templates an expression can produce, each a list of parts: a str (literal text)
    or a one-item tuple (a value filled in at run time, named by its expression where it is short)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [[node.value]]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value)
            else:
                expr = ast.unparse(value.value)
                parts.append((expr if len(expr) <= 24 and "(" not in expr else "…",))
        return [parts]
    if isinstance(node, ast.IfExp):
        return _string_parts(node.body) + _string_parts(node.orelse)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _string_parts(node.left) for b in _string_parts(node.right)]
    return [[("…",)]]


def shown(parts: list) -> str:
    """A template as the facilitator reads it: values as {name}."""
    return "".join(p if isinstance(p, str) else "{" + p[0] + "}" for p in parts)


def code_span(text: str) -> str:
    """``text`` as one markdown code span (on one line; double backticks where it holds one)."""
    text = " ".join(text.split())
    return f"`` {text} ``" if "`" in text else f"`{text}`"


GENERAL = {"student copy": "In a student copy, before the learner writes the cell",
           "✗ wrong shape": "An answer of another shape than the checker reads (after `✗ NN.K: `)",
           "ValueError": "An exercise id that does not exist (an error)",
           "TypeError": "A `check(...)` call without the lesson's measurements it needs (an error)"}


def pattern(parts: list) -> re.Pattern:
    """A template as a regular expression: literal text exact, each value anything."""
    return re.compile("".join(re.escape(p) if isinstance(p, str) else ".+?" for p in parts), flags=re.S)


def _checker_id(decorator) -> tuple[str, str] | None:
    if (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "checker_for"
            and decorator.args and isinstance(decorator.args[0], ast.Constant)):
        answer = next((k.value for k in decorator.keywords if k.arg == "answer"), None)
        return decorator.args[0].value, (answer.value if isinstance(answer, ast.Constant) else "")
    return None


def _verdicts(function) -> list[tuple[bool, list]]:
    """(ok, template) of every ``return ok, message`` / ``ok, message = ...`` in a function."""
    found = []
    for node in ast.walk(function):
        value = node.value if isinstance(node, (ast.Return, ast.Assign)) else None
        if (isinstance(value, ast.Tuple) and len(value.elts) == 2 and isinstance(value.elts[0], ast.Constant)
                and isinstance(value.elts[0].value, bool)):
            found += [(value.elts[0].value, parts) for parts in _string_parts(value.elts[1])]
    return found


def check_messages(path: Path = CHECK_PY) -> dict:
    """``{"exercises": {id: {"answer", "function", "doc", "messages": [(ok, parts)]}}, "general": [(label, parts)]}``:
    what ``check`` prints for each exercise (``✓ id: ...`` / ``✗ id: ...``) and for any exercise."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exercises, general = {}, []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            ids = [d for d in map(_checker_id, node.decorator_list) if d]
            if ids:
                eid, answer = ids[0]
                doc = (ast.get_docstring(node) or "").split(".")[0]
                exercises[eid] = {"answer": answer, "function": node.name, "doc": doc, "messages": _verdicts(node)}
            elif node.name == "check":
                general += [("✗ wrong shape", parts) for ok, parts in _verdicts(node) if not ok]
                for raise_ in (n for n in ast.walk(node) if isinstance(n, ast.Raise)):
                    if isinstance(raise_.exc, ast.Call) and raise_.exc.args:
                        label = getattr(raise_.exc.func, "id", "error")
                        general += [(label, parts) for parts in _string_parts(raise_.exc.args[0])]
        elif isinstance(node, ast.ClassDef) and node.name == "YourTurn":
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call) and n.args):
                if getattr(call.func, "attr", "") == "__init__":
                    general += [("student copy", parts) for parts in _string_parts(call.args[0])]
    return {"exercises": exercises, "general": general}


QUOTE = re.compile(r"(`+) ?([✗✓] (\d\d\.\d+): .*?) ?\1")


def quotes(text: str) -> list[tuple[str, str, bool]]:
    """(exercise id, the message quoted, ok) of every ``✗ NN.K: ...`` / ``✓ NN.K: ...`` code span."""
    return [(m.group(3), m.group(2).split(": ", 1)[1], m.group(2).startswith("✓")) for m in QUOTE.finditer(text)]


def unmatched_quotes(text: str, messages: dict) -> list[str]:
    """The quoted messages that ``check`` cannot print (a quote may put … or an example value where the
    message has a value)."""
    bad = []
    for eid, quoted, ok in quotes(text):
        templates = [parts for is_ok, parts in messages["exercises"].get(eid, {}).get("messages", []) if is_ok == ok]
        templates += [parts for label, parts in messages["general"] if label == "✗ wrong shape" and not ok]
        if not any(pattern(parts).fullmatch(quoted) for parts in templates):
            bad.append(f"{'✓' if ok else '✗'} {eid}: {quoted}")
    return bad


# --------------------------------------------------------------------------- facilitator notes


NOTE_HEADING = re.compile(r"^## (\d\d\.\d+)\b.*$", flags=re.M)


def split_notes(text: str) -> tuple[str, dict]:
    """(the text before the first exercise heading, {id: the section's body})."""
    heads = list(NOTE_HEADING.finditer(text))
    intro = text[:heads[0].start()] if heads else text
    notes = {}
    for h, nxt in zip(heads, heads[1:] + [None]):
        notes[h.group(1)] = text[h.end():nxt.start() if nxt else len(text)].strip()
    return intro, notes


def facilitator_markdown(exercises: list[dict], notes_text: str, messages: dict) -> tuple[str, list[str]]:
    """The facilitator page and the problems found (an exercise without notes, notes for no exercise,
    a quote check cannot print)."""
    intro, notes = split_notes(notes_text)
    lines = [intro.strip(), ""] if intro.strip() else []
    problems = []
    general = [f"- {GENERAL.get(label, label)}: {code_span(shown(parts))}" for label, parts in messages["general"]]
    if general:
        lines += ["### What any exercise can print", "", *general, ""]
    lesson = None
    for e in exercises:
        if e["lesson"] != lesson:
            lesson = e["lesson"]
            lines += [f"# Lesson {lesson}", ""]
        lines += [f"## {e['id']} {e['title']}", "",
                  f"*Worked solution: {e['notebook']}, under Exercises ▸ Solutions; it ends with* "
                  f"`assert {e['call'] or 'check(...)'}`", "",
                  f"**The task.** {e['text']}", ""]
        checker = messages["exercises"].get(e["id"])
        if checker:
            lines += [f"**What the learner passes to `check`.** {checker['answer']}.", ""]
        else:
            problems.append(f"exercise {e['id']} ({e['notebook']}) has no checker in labkit/course/check.py")
        if e["id"] in notes:
            lines += [notes[e["id"]], ""]
        else:
            problems.append(f"exercise {e['id']} ({e['notebook']}) has no notes in docs/workshop/facilitator.md")
            lines += [f"*No facilitator notes yet: add a `## {e['id']}` section to docs/workshop/facilitator.md.*", ""]
        if checker:
            lines += [f"Every line `check` can print for {e['id']} (values in braces are filled in from the lesson's numbers):", ""]
            lines += [f"- {code_span(('✓ ' if ok else '✗ ') + e['id'] + ': ' + shown(parts))}"
                      for ok, parts in checker["messages"]]
            lines.append("")
    ids = {e["id"] for e in exercises}
    problems += [f"docs/workshop/facilitator.md has notes for {eid}, which no notebook has" for eid in notes if eid not in ids]
    problems += [f"docs/workshop/facilitator.md quotes a message check cannot print: {q}"
                 for q in unmatched_quotes(notes_text, messages)]
    return "\n".join(lines).rstrip() + "\n", problems


# --------------------------------------------------------------------------- the rubric


RUBRIC_HEADING = re.compile(r"^(#{2,3})\s+(?:\d+\.\s+)?.*\brubric\b.*$", flags=re.M | re.I)


def rubric(root: Path = ROOT) -> dict:
    """The capstone's rubric: the lesson, its heading, the text before the table and the table's rows
    (``[[item, what counts], ...]``), from the first notebook with a markdown heading naming a rubric."""
    for path in lesson_table.notebooks(root):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            heading = RUBRIC_HEADING.search(cell.source) if cell.cell_type == "markdown" else None
            if not heading:
                continue
            body = cell.source[heading.end():].strip().splitlines()
            table = [l for l in body if l.strip().startswith("|")]
            intro = " ".join(l.strip() for l in body if l.strip() and not l.strip().startswith("|"))
            header, rows = split_row(table[0]), [split_row(l) for l in table[2:]]
            return {"lesson": path.name[:2], "notebook": f"notebooks/{path.name}", "title": lesson_title(path),
                    "heading": heading.group(0).lstrip("#").strip(), "intro": intro, "header": header, "rows": rows}
    raise SystemExit("workshop: no notebook has a markdown heading with 'rubric' in it")


def split_row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def rubric_markdown(r: dict) -> str:
    lines = [f"# Capstone rubric: lesson {r['lesson']}, {r['title']}", "",
             f"For the instructor grading a capstone, and the learner checking their own: lesson {r['lesson']}'s rubric, "
             f"printed. Extracted from `{r['notebook']}` by `make workshop`.", "",
             "Learner: ______________________ &nbsp; Date: ____________ &nbsp; Grader: ______________________", "",
             r["intro"], "",
             "| " + " | ".join(r["header"] + ["met?", "evidence, notes"]) + " |",
             "|" + "---|" * (len(r["header"]) + 2)]
    lines += ["| " + " | ".join(row + ["☐", " "]) + " |" for row in r["rows"]]
    lines += ["", "Overall: ______________________________________________________________", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the cheat sheet


DEFAULTS_MARK = re.compile(r"^([ \t]*)<!-- finetune-defaults -->.*?<!-- /finetune-defaults -->", flags=re.S | re.M)
SHOWN_FLAGS = ["--method", "--lora_r", "--lora_alpha", "--lora_dropout", "--target_modules", "--learning_rate",
               "--max_steps", "--time_budget", "--eval_steps", "--lr_scheduler_type", "--warmup_steps", "--weight_decay",
               "--per_device_train_batch_size", "--max_seq_len", "--torch_dtype", "--gradient_checkpointing"]


def finetune_defaults(path: Path = FLAGS_PY) -> dict:
    """``{flag: default as shown}`` for ``labkit finetune``, read from the CLI's source: each
    ``add_argument``'s default, or the ``(default: ...)`` of its help; ``--max_steps``,
    ``--learning_rate`` and ``--eval_steps`` from the task defaults finetune fills in (a classification
    task's steps: what its time budget fits)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, consts = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args
                and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("--")):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        value = None
        if "default" in kw:
            try:
                value = ast.literal_eval(kw["default"])
            except ValueError:
                value = None
        help_text = " ".join(p for parts in _string_parts(kw["help"]) for p in parts if isinstance(p, str)) if "help" in kw else ""
        in_help = re.search(r"default:\s*([^)]*)", help_text)
        shown_value = in_help.group(1).strip() if (value is None and in_help) else value
        explained = re.match(rf"{re.escape(str(value))}:\s*([^;.]+)", help_text) if value is not None else None
        if explained:                                  # e.g. --torch_dtype: "auto: float32 on CPU, ..."
            shown_value = f"{value} ({explained.group(1).strip()})"
        found.setdefault(node.args[0].value, shown_value)
    tasks = consts.get("TASK_DEFAULTS", {})
    if tasks:
        classification, other = tasks["classification"], tasks["other"]
        found["--max_steps"] = (f"{number(classification['max_steps'])}" if "max_steps" in classification else
                                f"what `--time_budget` {number(consts['DEFAULT_TIME_BUDGET'])} min fits") + \
            f" for classification, {number(other['max_steps'])} otherwise"
        rates = classification["learning_rate"], other["learning_rate"]
        found["--learning_rate"] = number(rates[0]) if rates[0] == rates[1] else \
            f"{number(rates[0])} for classification, {number(rates[1])} otherwise"
    if "EVALUATIONS_PER_RUN" in consts:
        found["--eval_steps"] = f"max_steps / {consts['EVALUATIONS_PER_RUN']}"
    if "WARMUP_SHARE" in consts:
        found["--warmup_steps"] = f"{consts['WARMUP_SHARE']:.0%} of the steps, at least 5"
    if "DEFAULT_TIME_BUDGET" in consts:
        found["--time_budget"] = f"{number(consts['DEFAULT_TIME_BUDGET'])} min for classification"
    return found


def number(value) -> str:
    """2e-3 rather than 0.002; 100 as 100."""
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def defaults_markdown(defaults: dict, indent: str = "") -> str:
    """The defaults as one line of ``--flag value`` items at ``indent`` (it replaces the markers and what
    they hold: a line of the list item they sit in)."""
    cells = []
    for flag in SHOWN_FLAGS:
        if flag in defaults:
            value = defaults[flag]
            value = "off" if value is False else "on" if value is True else value
            cells.append(f"`{flag}` {value}")
    return indent + " · ".join(cells) + "."


# --------------------------------------------------------------------------- HTML and PDF


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; line-height: 1.4;
       color: #111; max-width: 58em; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.4em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .6em 0; } th, td { border: 1px solid #999; padding: .25em .5em; vertical-align: top; }
th { background: #eee; text-align: left; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .92em; background: #f3f3f3; padding: 0 .2em; }
pre { background: #f3f3f3; padding: .5em; overflow-x: auto; } pre code { padding: 0; }
a { color: #1a4f9c; }
@media print { body { margin: 0; max-width: none; } a { color: inherit; text-decoration: none; }
               h2, h3 { break-after: avoid; } tr, li { break-inside: avoid; } }
"""

PRINT_CSS = """
@page { size: A4; margin: 12mm; }
"""

RUBRIC_CSS = """
table { width: 100%; } td { height: 3.4em; } td:last-child { width: 36%; } td:nth-child(3) { text-align: center; }
"""

CHEATSHEET_CSS = """
@page { size: A4; margin: 9mm 10mm; }
body { max-width: 190mm; margin: 0 auto; font-size: 9pt; line-height: 1.3; }
h1 { font-size: 13pt; margin: 0 0 .25em; padding-bottom: .1em; }
h2 { font-size: 9.6pt; margin: .55em 0 .2em; border-bottom: 1px solid #999; }
h3 { font-size: 8.6pt; margin: .4em 0 .1em; }
p { margin: .2em 0 .3em; } ul, ol { margin: .15em 0 .3em; padding-left: 1.3em; } li { margin: .05em 0; }
.columns { column-count: 2; column-gap: 6mm; }
.columns h2:first-child { margin-top: 0; }
table { font-size: 8.2pt; margin: .2em 0; width: 100%; } th, td { padding: .1em .3em; }
pre { font-size: 7.7pt; padding: .25em .4em; margin: .2em 0; white-space: pre-wrap; break-inside: avoid; }
code { font-size: 8.2pt; white-space: nowrap; }
pre code { font-size: 7.7pt; white-space: pre-wrap; }
td:first-child { white-space: nowrap; }
@media screen { body { margin: 1.5em auto; } }
"""


def render_markdown(text: str) -> str:
    """Markdown to HTML: with python-markdown where installed, else mistune (Jupyter's), else escaped text."""
    try:
        import markdown

        return markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")
    except ImportError:
        pass
    try:
        import mistune

        return mistune.html(text)
    except (ImportError, AttributeError):
        return f"<pre>{html.escape(text)}</pre>"


def html_page(title: str, body: str, css: str = CSS + PRINT_CSS) -> str:
    body = re.sub(r'href="([\w-]+)\.md(#[^"]*)?"', r'href="\1.html\2"', body)   # links between the pack's pages
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
            f"<style>{css}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def cheatsheet_html(text: str) -> str:
    """The cheat sheet: its title across the page, everything below in two columns."""
    title, _, rest = text.partition("\n")
    body = render_markdown(title) + '\n<div class="columns">\n' + render_markdown(rest) + "\n</div>"
    return html_page(title.lstrip("# ").strip(), body, CSS + CHEATSHEET_CSS)


def chromium() -> str | None:
    """Chromium's executable: ``$LABKIT_CHROMIUM``, else the first of the usual names on PATH."""
    named = os.environ.get("LABKIT_CHROMIUM")
    if named:
        return named if Path(named).is_file() else shutil.which(named)
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")) if p),
                None)


def pdf_pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


def print_pdf(page: Path, pdf: Path, browser: str) -> str:
    """Print ``page`` to ``pdf`` with headless Chromium; returns a line saying what happened."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                               "--no-pdf-header-footer", "--print-to-pdf-no-header", f"--print-to-pdf={pdf}",
                               page.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not pdf.is_file():
        return f"cheatsheet.pdf: not written, Chromium failed ({done.returncode}): {done.stderr.strip()[-300:]}"
    pages = pdf_pages(pdf)
    warning = "" if pages == 1 else "  WARNING: more than one A4 page, shorten docs/workshop/cheatsheet.md"
    return f"cheatsheet.pdf: {pages} page(s), {pdf.stat().st_size / 1e3:.0f} kB{warning}"


# --------------------------------------------------------------------------- the pack


PACK_PAGES = {"faq.md", "cheatsheet.md", "facilitator.md"}
MD_LINK = re.compile(r"(\]\()([^)\s#]+)([^)]*\))")


def relink(text: str, out: Path) -> str:
    """Relative links of a page written in docs/workshop/, pointed at the same files from ``out`` (links
    between the pack's pages stay: the build has those pages too)."""
    def fix(m):
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) or target in PACK_PAGES:
            return m.group(0)
        return m.group(1) + os.path.relpath(HERE / target, out) + m.group(3)
    return MD_LINK.sub(fix, text)


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def index_html(pages: list[tuple[str, str, str]], agendas: dict) -> str:
    items = "\n".join(f'<li><a href="{href}">{html.escape(title)}</a>: {html.escape(what)}</li>' for href, title, what in pages)
    days = " ".join(f"{a['title']}: {len(a['rows'])} slots, {sum(r['kind'] == 'lesson' for r in a['rows'])} lessons"
                    f"{', ' + str(len(a['home'])) + ' left for home' if a['home'] else ''}." for a in agendas.values())
    body = (f"<h1>Fine-Tuning Lab: workshop pack</h1>\n<p>For instructors running the course in a room. "
            f"Built by <code>make workshop</code> from the notebooks, <code>labkit</code> and "
            f"<code>docs/workshop/</code>. {html.escape(days)}</p>\n<ul>\n{items}\n</ul>")
    return html_page("Fine-Tuning Lab: workshop pack", body)


def build(out: Path, pdf: bool = True, links_from: Path | None = None) -> dict:
    """Write the pack into ``out``; returns what was built (pages, agendas, problems found, the PDF line).
    Relative links are written as seen from ``links_from`` (default ``out``): docs/site/build.py writes
    the pack into a copy of the repository's layout and passes OUT, the place the copy stands for."""
    out.mkdir(parents=True, exist_ok=True)
    base = links_from or out
    all_lessons = lessons()
    agendas = {day.key: plan(day, all_lessons) for day in DAYS}
    write(out / "agendas.json", json.dumps({"lessons": all_lessons, "agendas": agendas}, indent=1, ensure_ascii=False))
    pages = []
    for key, agenda in agendas.items():
        text = agenda_markdown(agenda, base)
        write(out / f"agenda-{key}.md", text)
        write(out / f"agenda-{key}.html", html_page(text.splitlines()[0].lstrip("# "), render_markdown(text)))
        pages.append((f"agenda-{key}.html", f"Agenda: {agenda['title'].lower()}", f"{hours(agenda['minutes'])}, "
                      f"{agenda['start']}–{agenda['end']}"))

    messages = check_messages()
    notes_text = (HERE / "facilitator.md").read_text(encoding="utf-8")
    facilitator, problems = facilitator_markdown(all_exercises(), notes_text, messages)
    facilitator = relink(facilitator, base)
    write(out / "facilitator.md", facilitator)
    write(out / "facilitator.html", html_page("Facilitator notes", render_markdown(facilitator)))
    pages.append(("facilitator.html", "Facilitator notes", "every exercise: common wrong answers and what check says"))

    r = rubric()
    text = rubric_markdown(r)
    write(out / "rubric.md", text)
    write(out / "rubric.html", html_page("Capstone rubric", render_markdown(text), CSS + PRINT_CSS + RUBRIC_CSS))
    pages.append(("rubric.html", "Capstone rubric", f"lesson {r['lesson']}'s rubric, to print"))

    sheet = (HERE / "cheatsheet.md").read_text(encoding="utf-8")
    if not DEFAULTS_MARK.search(sheet):
        problems.append("docs/workshop/cheatsheet.md has no <!-- finetune-defaults --> ... <!-- /finetune-defaults --> block")
    defaults = finetune_defaults()
    sheet = relink(DEFAULTS_MARK.sub(lambda m: defaults_markdown(defaults, m.group(1)), sheet), base)
    write(out / "cheatsheet.md", sheet)
    write(out / "cheatsheet.html", cheatsheet_html(sheet))
    pages.append(("cheatsheet.html", "Cheat sheet", "the commands and the fine-tuning recipe, one A4 page"))
    (out / "cheatsheet.pdf").unlink(missing_ok=True)     # never leave an older build's PDF next to a newer page
    pdf_line = "cheatsheet.pdf: skipped (--no-pdf)"
    if pdf:
        browser = chromium()
        if browser:
            pdf_line = print_pdf(out / "cheatsheet.html", out / "cheatsheet.pdf", browser)
            if (out / "cheatsheet.pdf").is_file():
                pages.append(("cheatsheet.pdf", "Cheat sheet (PDF)", "the same page, to print"))
        else:
            pdf_line = ("cheatsheet.pdf: skipped, no Chromium found (install it, e.g. `apt-get install chromium`, or set "
                        "LABKIT_CHROMIUM); print cheatsheet.html from a browser instead")

    faq = relink((HERE / "faq.md").read_text(encoding="utf-8"), base)
    write(out / "faq.md", faq)
    write(out / "faq.html", html_page("Workshop FAQ", render_markdown(faq)))
    pages.append(("faq.html", "FAQ", "Windows, ports, proxies, memory, battery, no Wi-Fi"))
    write(out / "index.html", index_html(pages, agendas))
    return {"out": out, "pages": pages, "agendas": agendas, "problems": problems, "pdf": pdf_line}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write the pack (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--no-pdf", action="store_true", help="do not print the cheat sheet to PDF")
    args = parser.parse_args(argv)
    built = build(args.out, pdf=not args.no_pdf)
    for key, agenda in built["agendas"].items():
        taken = [r["lesson"] for r in agenda["rows"] if r["kind"] == "lesson"]
        home = [h["lesson"] for h in agenda["home"]]
        print(f"{agenda['title']} ({agenda['minutes']} min): lessons {', '.join(taken)}"
              + (f"; for home: {', '.join(home)}" if home else ""))
    print(built["pdf"])
    for problem in built["problems"]:
        print(f"WARNING: {problem}", file=sys.stderr)
    print(f"workshop pack: {len(built['pages'])} pages in {args.out}/ (open index.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
