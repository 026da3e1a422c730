"""docs/workshop/: the workshop pack builds, and what it says is true.

The pack is built once into a temporary folder (no PDF: that needs Chromium, see the slow test at the end).
The agendas list only lessons that exist, with the minutes docs/lesson_table.py and lesson_times.json give
them, and fit their day; every exercise the notebooks hold has facilitator notes, whose quotes are lines
`check` can print; the rubric page is the notebook's rubric; every `make` target and `labkit` flag the cheat
sheet shows exists, and its defaults are `labkit finetune`'s.
"""

import argparse
import ast
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from test_docs import code, labkit_uses

ROOT = Path(__file__).resolve().parents[1]
WORKSHOP = ROOT / "docs" / "workshop"
SOURCES = sorted(WORKSHOP.glob("*.md"))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build = _load("workshop_build", WORKSHOP / "build.py")
lesson_table = build.lesson_table


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("workshop")
    return build.build(out, pdf=False)


def notebook_exercise_ids() -> dict[str, set]:
    """{lesson: exercise ids}, found independently of build.py: solution cells' metadata and the
    ``check("NN.K", ...)`` calls in every code cell."""
    found = {}
    for path in lesson_table.notebooks():
        nb = nbformat.read(path, as_version=4)
        ids = {c.metadata["exercise"] for c in nb.cells if "exercise" in c.get("metadata", {})}
        for cell in nb.cells:
            if cell.cell_type == "code":
                ids |= set(re.findall(r"""\bcheck\(\s*["'](\d\d\.\d+)["']""", cell.source))
        found[path.name[:2]] = ids
    return found


# --------------------------------------------------------------------------- agendas


def test_agendas_list_only_lessons_that_exist_and_fit_their_day(pack):
    lessons = {p.name[:2]: p for p in lesson_table.notebooks()}
    times = json.loads(lesson_table.times_file().read_text(encoding="utf-8"))
    days = {d.key: d for d in build.DAYS}
    assert set(days) == {"half-day", "full-day"}
    assert 195 <= days["half-day"].minutes <= 225 and 400 <= days["full-day"].minutes <= 440   # about 3.5 h and 7 h
    for key, agenda in pack["agendas"].items():
        rows = agenda["rows"]
        taken = [r["lesson"] for r in rows if r["kind"] == "lesson"]
        home = [h["lesson"] for h in agenda["home"]]
        assert taken and set(taken) <= set(lessons), (key, taken)
        assert taken + home == sorted(lessons), f"{key}: every lesson once, in course order, in the room or for home"
        assert sum(r["minutes"] for r in rows) <= agenda["minutes"] == days[key].minutes, key
        assert sum(r["kind"] == "break" for r in rows) == len(days[key].breaks), key
        for row in (r for r in rows if r["kind"] == "lesson"):
            path = lessons[row["lesson"]]
            assert row["reading"] == lesson_table.reading_minutes(path), row
            slow = lesson_table.compute_minutes(times, row["lesson"], lesson_table.SLOW)
            if slow != "—":
                assert row["compute"] == float(slow) and not row["compute_note"], row
            else:
                assert row["compute_note"], f"lesson {row['lesson']}'s compute minutes are estimated: the agenda says so"
            assert row["minutes"] == math.ceil(row["reading"] + row["compute"]) + days[key].exercise_minutes, row
        page = (pack["out"] / f"agenda-{key}.md").read_text(encoding="utf-8")
        for number in taken:
            assert f"Lesson {number}:" in page
        for number in home:
            assert f"- Lesson {number}:" in page, f"{key}: lesson {number} is left for home and the page says so"
    assert pack["agendas"]["half-day"]["home"], "the half day leaves lessons for home"


def test_the_agenda_fills_the_day_with_a_buffer_not_beyond_it():
    lessons = [{"lesson": f"{i:02d}", "title": f"L{i}", "reading": 20, "compute": 2.5, "compute_note": "",
                "exercises": []} for i in range(12)]
    day = build.Day("t", "Test", 120, "10:00", opening=(10, "open"), closing=(10, "close"), breaks=[(0.5, 10, "Break")],
                    exercise_minutes=5)
    agenda = build.plan(day, lessons)
    assert [r["lesson"] for r in agenda["rows"] if r["kind"] == "lesson"] == ["00", "01", "02"]   # 3 x 28 min fit in 90
    assert [h["lesson"] for h in agenda["home"]] == [f"{i:02d}" for i in range(3, 12)]
    assert sum(r["minutes"] for r in agenda["rows"]) == 120 and agenda["rows"][-1]["start"] == "11:50"


# --------------------------------------------------------------------------- facilitator notes


def test_every_exercise_has_facilitator_notes(pack):
    by_lesson = notebook_exercise_ids()
    ids = set().union(*by_lesson.values())
    assert ids, "the notebooks hold exercises"
    built = [e["id"] for e in build.all_exercises()]
    assert set(built) == ids and len(built) == len(set(built)), "build.py finds every exercise, once"
    _, notes = build.split_notes((WORKSHOP / "facilitator.md").read_text(encoding="utf-8"))
    missing = sorted(ids - set(notes))
    assert not missing, f"docs/workshop/facilitator.md has no `## NN.K` section for {missing}"
    assert not set(notes) - ids, f"facilitator.md has notes for exercises no notebook has: {sorted(set(notes) - ids)}"
    for eid in ids:
        assert any(q[0] == eid and not q[2] for q in build.quotes(notes[eid])), f"{eid}: quote at least one ✗ line"
    page = (pack["out"] / "facilitator.md").read_text(encoding="utf-8")
    for eid in ids:
        assert re.search(rf"^## {re.escape(eid)} ", page, flags=re.M), eid
    assert not pack["problems"], pack["problems"]


def test_facilitator_quotes_are_lines_check_prints():
    messages = build.check_messages()
    text = (WORKSHOP / "facilitator.md").read_text(encoding="utf-8")
    assert build.quotes(text)
    assert not build.unmatched_quotes(text, messages)
    invented = "`✗ 05.1: patience …: try a larger patience`"
    assert build.unmatched_quotes(invented, messages) == ["✗ 05.1: patience …: try a larger patience"]


def test_check_messages_are_read_from_every_checker(capsys):
    """The messages build.py reads from check.py's source are the ones check prints."""
    from labkit.course.check import CHECKS, check

    messages = build.check_messages()
    assert set(messages["exercises"]) == set(CHECKS)
    for eid, checker in messages["exercises"].items():
        assert checker["answer"] == CHECKS[eid].answer and any(not ok for ok, _ in checker["messages"]), eid
    evals = [{"step": s, "eval_loss": l} for s, l in [(5, 2.0), (10, 1.5), (15, 1.6), (20, 1.55), (25, 1.7)]]
    widths = {10: 0.47, 40: 0.23, 138: 0.121}
    for eid, answer, measured in [("05.1", {1: (15, 15), 2: (20, 10), 4: (25, 10)}, dict(evals=evals)),
                                  ("05.1", {1: (15, 10)}, dict(evals=evals)),
                                  ("04.2", 10_000, dict(widths=widths)),
                                  ("05.1", 42, dict(evals=evals))]:
        assert check(eid, answer, **measured) is False
        printed = capsys.readouterr().out.strip()
        assert printed.startswith(f"✗ {eid}: ")
        assert not build.unmatched_quotes(f"`{printed}`", messages), printed


# --------------------------------------------------------------------------- rubric


def test_the_rubric_page_is_the_notebooks_rubric(pack):
    nb = nbformat.read(ROOT / "notebooks" / "08_capstone.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and re.search(r"^##.*rubric", c.source, re.M | re.I))
    rows = [[x.strip() for x in line.strip().strip("|").split("|")]
            for line in cell.source.splitlines() if line.strip().startswith("|")][2:]
    assert rows, "the capstone's rubric is a markdown table"
    page = (pack["out"] / "rubric.md").read_text(encoding="utf-8")
    printed = [[x.strip() for x in line.strip().strip("|").split("|")][:2]
               for line in page.splitlines() if line.startswith("|")][2:]
    assert printed == rows
    html = (pack["out"] / "rubric.html").read_text(encoding="utf-8")
    assert all(item in html for item, _ in rows) and "@page" in html


# --------------------------------------------------------------------------- cheat sheet


@pytest.fixture(scope="module")
def parser():
    from labkit.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


MAKE = re.compile(r"^\s*(?:[A-Za-z_]\w*=\S*\s+)*make(?:\s+[A-Za-z_]\w*=\S*)*\s+([a-z][\w.-]*)")


def make_uses(page: Path) -> list[str]:
    """The target of every command line in the page's code that starts with `make` (after VAR=value
    settings): `make doctor SLOT=20`, `WHEELHOUSE=w make model`; not a `make` inside other words."""
    return [m.group(1) for block in code(page.read_text(encoding="utf-8")) for line in block.splitlines()
            if (m := MAKE.match(line))]


def assert_commands_exist(page: Path, parser) -> None:
    """Every `make TARGET` the page shows runs under `make -n`; every `labkit CMD --flag` is in CMD's parser."""
    for target in sorted(set(make_uses(page))):
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{page.name} shows `make {target}`: {done.stderr[-400:]}"
    for command, flags in labkit_uses(page):
        assert command in parser, f"{page.name} shows `labkit {command}`, which is not a command"
        known = {s for a in parser[command]._actions for s in a.option_strings}
        assert not set(flags) - known, f"{page.name}: `labkit {command}` has no {sorted(set(flags) - known)}"


def test_every_command_on_the_cheat_sheet_exists(pack, parser):
    sheet = pack["out"] / "cheatsheet.md"
    assert {"lab", "test", "course", "doctor", "student"} <= set(make_uses(sheet))
    assert {"finetune", "evaluate", "export", "chat", "search", "run"} <= {cmd for cmd, _ in labkit_uses(sheet)}
    assert_commands_exist(sheet, parser)
    # the recipe's flags (shown alone) are finetune's, and its labkit.evaluate functions exist
    finetune = {s for a in parser["finetune"]._actions for s in a.option_strings}
    spans = [c for c in code(sheet.read_text(encoding="utf-8")) if re.fullmatch(r"--[a-z_]+( \S+)?", c)]
    assert spans and not {c.split()[0] for c in spans} - finetune, spans
    defined = {n.name for n in ast.parse((ROOT / "labkit" / "evaluate.py").read_text(encoding="utf-8")).body
               if isinstance(n, ast.FunctionDef)}
    used = set(re.findall(r"\bevaluate\.(\w+)", sheet.read_text(encoding="utf-8")))
    assert used and used <= defined, used - defined


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_command_the_other_pages_show_exists(path, parser):
    assert_commands_exist(path, parser)


def test_the_cheat_sheet_shows_finetunes_own_defaults(pack, parser):
    sheet = (pack["out"] / "cheatsheet.md").read_text(encoding="utf-8")
    assert "finetune-defaults" not in sheet, "the markers are replaced by the defaults"
    defaults = {a.option_strings[0]: a.default for a in parser["finetune"]._actions if a.option_strings}
    for flag in build.SHOWN_FLAGS:
        if defaults.get(flag) not in (None, True, False):
            assert f"`{flag}` {defaults[flag]}" in sheet, flag
    from labkit.cli.flags import DEFAULT_TIME_BUDGET, TASK_DEFAULTS

    assert f"`--learning_rate` {build.number(TASK_DEFAULTS['classification']['learning_rate'])}" in sheet
    assert f"`--max_steps` what `--time_budget` {build.number(DEFAULT_TIME_BUDGET)} min fits for classification" in sheet


def test_html_pages_are_standalone_and_print_on_a4(pack):
    pages = sorted(pack["out"].glob("*.html"))
    assert {p.stem for p in pages} >= {"agenda-half-day", "agenda-full-day", "facilitator", "rubric", "cheatsheet",
                                       "faq", "index"}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<style>" in text and "@media print" in text and "size: A4" in text, page.name
        assert not re.search(r"<link[^>]+stylesheet|<script|src=\"https?:", text), f"{page.name} loads something"
    sheet = (pack["out"] / "cheatsheet.html").read_text(encoding="utf-8")
    assert 'class="columns"' in sheet and "<table>" in sheet and "<pre>" in sheet


def test_without_chromium_the_pdf_is_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CHROMIUM", str(tmp_path / "no-chromium-here"))
    built = build.build(tmp_path / "pack", pdf=True)
    assert built["pdf"].startswith("cheatsheet.pdf: skipped, no Chromium found")
    assert not (tmp_path / "pack" / "cheatsheet.pdf").exists() and (tmp_path / "pack" / "cheatsheet.html").is_file()


# --------------------------------------------------------------------------- the pages themselves


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_each_page_says_whom_it_is_for(path):
    lines = [l.strip() for l in re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S).splitlines()]
    first = next(l for l in lines if l and not l.startswith("#"))
    assert first.startswith("For "), f"{path.name}: the first line after the title should say whom it is for"


def test_built_pages_say_whom_they_are_for_and_their_links_resolve(pack):
    for page in sorted(pack["out"].glob("*.md")):
        text = page.read_text(encoding="utf-8")
        first = next(l for l in text.splitlines() if l.strip() and not l.startswith("#"))
        assert first.startswith("For "), page.name
        for target in re.findall(r"\]\(([^)\s#]+)", re.sub(r"`[^`]*`", "", text)):
            if not re.match(r"^[a-z]+:", target):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
    for source in SOURCES:
        for target in re.findall(r"\]\(([^)\s#]+)", re.sub(r"`[^`]*`", "", source.read_text(encoding="utf-8"))):
            if not re.match(r"^[a-z]+:", target):
                assert (source.parent / target).exists(), f"{source.name} links to {target}, which does not exist"


def test_make_workshop_is_a_target():
    done = subprocess.run(["make", "-n", "workshop"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "docs/workshop/build.py" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_the_cheat_sheet_prints_on_one_a4_page(tmp_path):
    if not build.chromium():
        pytest.skip("no Chromium (apt-get install chromium, or LABKIT_CHROMIUM=/path/to/chromium)")
    done = subprocess.run([sys.executable, str(WORKSHOP / "build.py"), "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert build.pdf_pages(tmp_path / "cheatsheet.pdf") == 1, done.stdout
