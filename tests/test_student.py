"""labkit.course.student on the real lessons: the instructor's notebooks tag every worked solution, and
the student copies keep every other cell, hide every answer and raise YourTurn in its place."""

import ast
import builtins
import re
from pathlib import Path

import nbformat
import pytest

from labkit.course import student
from labkit.course.check import CHECKS, OPEN_ENDED, YourTurn

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if student.exercises_index(nbformat.read(p, as_version=4)) is not None]


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """``{name: (instructor notebook, student notebook)}``, built with the command line's code path."""
    out = tmp_path_factory.mktemp("student")
    assert student.main([str(ROOT / "notebooks"), "--out", str(out)]) == 0
    return {p.name: (nbformat.read(p, as_version=4), nbformat.read(out / p.name, as_version=4)) for p in NOTEBOOKS}


def solution_lines(cell) -> set:
    """The lines of a worked solution (code) or of the discussion part of a solution markdown cell."""
    text = cell.source if cell.cell_type == "code" else re.split(r"^#{1,6} ", cell.source, maxsplit=1, flags=re.M)[0]
    return {line.strip() for line in text.splitlines() if len(line.strip()) > 8}


def test_lessons_with_exercises():
    assert [p.name[:2] for p in WITH_EXERCISES] == ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_worked_solution_is_tagged(path):
    nb = nbformat.read(path, as_version=4)
    assert student.untagged_solutions(nb) == [], "a '# K.' code cell under '### Solutions' lacks the 'solution' tag"
    for cell in nb.cells:
        if student.is_solution(cell):
            eid = cell.metadata.get("exercise", "")
            assert re.fullmatch(rf"{path.name[:2]}\.\d+", eid), f"exercise id {eid!r} in {path.name}"
            if cell.cell_type == "code":
                assert cell.source.startswith(f"# {int(eid[3:])}."), cell.source[:40]
                assert f'assert check("{eid}", ' in cell.source, f"{eid}'s worked solution does not check itself"


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_every_exercise_has_a_tagged_solution(path):
    nb = nbformat.read(path, as_version=4)
    numbers = student.exercise_texts(nb.cells[student.exercises_index(nb)].source)
    solved = {c.metadata["exercise"] for c in nb.cells if student.is_solution(c) and c.cell_type == "code"}
    assert numbers and solved == {f"{path.name[:2]}.{k}" for k in numbers}


def names_read_before_defined(nb, only=lambda cell: True) -> list:
    """``(cell index, [names])`` for code cells (those ``only`` picks) that read a name before any cell
    above them, or the cell itself, binds it: a NameError waiting for nbval's top-to-bottom run."""
    bound, problems = set(dir(builtins)) | {"display", "get_ipython"}, []
    for i, cell in enumerate(nb.cells):
        tree = student.parse_python(cell.source) if cell.cell_type == "code" else None
        if tree is None:
            continue
        missing = [n for n in student.names_used_before_bound(tree) if n not in bound]
        if missing and only(cell):
            problems.append((i, missing))
        assigned, imported = student.module_bindings(tree)
        bound |= assigned | imported
    return problems


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_worked_solutions_read_only_names_defined_above(path):
    """A static guard against a NameError in CI's nbval run of the instructor's notebooks."""
    assert names_read_before_defined(nbformat.read(path, as_version=4), only=student.is_solution) == []


def test_student_copies_need_no_worked_solution(copies):
    """The lesson's cells after the exercises read nothing that only a worked solution defined."""
    for name, (_, pupil) in copies.items():
        assert names_read_before_defined(pupil) == [], name


def test_student_copies_keep_every_other_cell(copies):
    for name, (teacher, pupil) in copies.items():
        assert len(teacher.cells) == len(pupil.cells), name
        start = student.exercises_index(teacher)
        for i, (t, p) in enumerate(zip(teacher.cells, pupil.cells)):
            if student.is_solution(t):
                continue
            expected = t.source.replace("### Solutions", "### Your answers") if i == start else t.source
            same = (p.cell_type, p.source, p.metadata, p.get("id")) == (t.cell_type, expected, t.metadata, t.get("id"))
            assert same, f"{name} cell {i}"
        if start is not None:
            assert "### Your answers" in pupil.cells[start].source and "### Solutions" not in pupil.cells[start].source


def test_stubs_raise_your_turn_with_their_id(copies):
    stubs = 0
    for name, (teacher, pupil) in copies.items():
        for t, p in zip(teacher.cells, pupil.cells):
            if not (student.is_solution(t) and t.cell_type == "code"):
                continue
            eid = t.metadata["exercise"]
            assert p.cell_type == "code" and p.metadata == {"tags": ["raises-exception"], "exercise": eid}
            assert not p.outputs and p.execution_count is None
            with pytest.raises(YourTurn) as raised:
                exec(compile(p.source, f"{name}:{eid}", "exec"), {})
            assert raised.value.exercise == eid and eid in str(raised.value)
            stubs += 1
    assert stubs == len(CHECKS)


def test_readings_are_blanked_and_what_follows_them_is_kept(copies):
    teacher, pupil = copies["02_lora.ipynb"]
    for t, p in zip(teacher.cells, pupil.cells):
        if student.is_solution(t) and t.cell_type == "markdown":
            assert p.source.startswith(student.READING) and p.metadata == {"exercise": t.metadata["exercise"]}
            if "## Recap" in t.source:
                assert p.source.endswith(t.source[t.source.index("## Recap"):])


def test_no_student_copy_contains_a_solution_line(copies):
    for name, (teacher, pupil) in copies.items():
        lesson = {line.strip() for c in teacher.cells if not student.is_solution(c) for line in c.source.splitlines()}
        answers = set().union(*(solution_lines(c) for c in teacher.cells if student.is_solution(c))) - lesson
        shown = {line.strip() for c in pupil.cells for line in c.source.splitlines()}
        assert not answers & shown, f"{name} shows {sorted(answers & shown)[:3]}"


def test_every_exercise_in_the_copies_has_a_check(copies):
    ids = {c.metadata["exercise"] for _, pupil in copies.values() for c in pupil.cells if "exercise" in c.metadata}
    assert ids and ids <= set(CHECKS) | set(OPEN_ENDED), ids - set(CHECKS) - set(OPEN_ENDED)


def test_a_stub_says_what_to_do_what_the_lesson_offers_and_how_to_check(copies):
    _, pupil = copies["05_overfitting.ipynb"]
    stub = next(c.source for c in pupil.cells if c.metadata.get("exercise") == "05.1" and c.cell_type == "code")
    assert stub.startswith("# Exercise 05.1: Patience. Early stopping with patience *p* stops after")
    assert re.search(r"^# From the lesson you have: .*\bresults\b", stub, re.M)
    assert '#     check("05.1", stops, evals=results["overfit"]["evals"])' in stub
    assert f"#   the answer: {CHECKS['05.1'].answer}" in stub
    assert stub.endswith('raise YourTurn("05.1")')


def test_a_notebook_with_an_untagged_solution_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. **Sum.** Add the numbers.\n\n### Solutions"),
        nbformat.v4.new_code_cell("# 1. the sum\ntotal = 1 + 2")])
    nbformat.write(nb, tmp_path / "09_extra.ipynb")
    with pytest.raises(ValueError, match=r"09_extra.ipynb: cells \[1\] look like worked solutions"):
        student.write_student_copies(tmp_path, tmp_path / "out")
    assert student.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 1


def test_names_used_before_bound_skips_locals_and_rebinds():
    tree = ast.parse("def f(evals):\n    return evals + offset + later\n"
                     "rows = [x for x in data]\nA = 1\nlater = 2\nprint(A, B, rows, f(2))\nn = n + 1\n")
    assert student.names_used_before_bound(tree) == ["offset", "data", "print", "B", "n"]


@pytest.mark.slow
def test_a_student_copy_runs_as_a_learner_runs_it(copies, tmp_path):
    """Lesson 00's student copy, executed top to bottom in a real kernel (as Run All or nbval runs it,
    honouring the `raises-exception` tag): every lesson cell runs, and each exercise cell stops with
    YourTurn, shown as its message only (IPython's `_render_traceback_`), not a traceback."""
    from nbclient import NotebookClient

    nb = copies["00_setup.ipynb"][1]
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    stubs = [c for c in nb.cells if c.cell_type == "code" and "raises-exception" in c.metadata.get("tags", [])]
    assert stubs
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if cell in stubs:
            assert [e.ename for e in errors] == ["YourTurn"], cell.source
            shown = "\n".join(errors[0].traceback)
            assert "is yours" in shown and "Traceback" not in shown and "File " not in shown, shown
        else:
            assert not errors, (cell.source, errors)


def test_make_student_branch_commits_the_copies_without_touching_the_work_tree(tmp_path):
    # a small course repository: the Makefile and two lessons, committed
    import shutil
    import subprocess
    import sys

    repo = tmp_path / "course"
    (repo / "notebooks").mkdir(parents=True)
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    for path in WITH_EXERCISES[:2]:
        shutil.copy(path, repo / "notebooks" / path.name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for step in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "course"]):
        subprocess.run(git + step, cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
    assert student.main([str(repo / "notebooks"), "--out", str(repo / "student")]) == 0
    env = {**__import__("os").environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["make", "-o", "student", "-o", ".venv/.installed", "student-branch", f"PY={sys.executable}"],
                          cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "git push -f origin student" in done.stdout, done.stdout + done.stderr
    for path in WITH_EXERCISES[:2]:
        on_branch = subprocess.run(["git", "show", f"student:notebooks/{path.name}"], cwd=repo, capture_output=True,
                                   text=True, check=True).stdout
        assert on_branch == (repo / "student" / path.name).read_text() != path.read_text()
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout == head
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status.strip() == "?? student/", status     # the index and the tracked files as they were
