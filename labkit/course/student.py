"""Student copies of the lessons: every worked solution replaced by a cell for the learner to write.

    python -m labkit.course.student notebooks --out student      # or: make student

The convention, in the instructor's notebooks (``notebooks/``, the source of truth):

- A lesson's exercises are one markdown cell: the heading ``## Exercises`` (or ``## 5. Exercises``),
  the numbered exercises, then the heading ``### Solutions``.
- Each worked solution is a code cell that starts with a comment ``# K. ...`` (exercise K) and
  carries the cell tag ``solution`` and its exercise id, ``"NN.K"`` for lesson NN, exercise K, in its
  metadata: ``{"tags": ["solution"], "exercise": "02.1"}``. It ends with
  ``assert check("02.1", answer, **what_the_lesson_measured)`` (:mod:`labkit.course.check`), so running the
  instructor's notebook proves that the reference answer passes its own check.
- A markdown cell that discusses an answer (it gives the answer away too) carries the same tag
  and id. Its text up to its first heading is the discussion; a heading after it, such as
  ``## Recap``, and everything below it belong to the lesson and are kept.

In a student copy each solution code cell becomes a stub with the same id: the exercise's text
as a comment, the lesson's variables the worked solution starts from, the ``check(...)`` call to
run at the end, and ``raise YourTurn("02.1")``; it is tagged ``raises-exception``, so nbval runs
the copy through. Each solution markdown cell becomes an invitation to write one's own reading,
and ``### Solutions`` becomes ``### Your answers``. Every other cell is copied unchanged.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

SOLUTION = "solution"                 # the cell tag of a worked solution (code) or its discussion (markdown)
STUB_TAG = "raises-exception"         # nbval's tag for a cell that is expected to raise
SOLUTIONS_HEADING, ANSWERS_HEADING = "### Solutions", "### Your answers"
READING = "*Your reading here: what did you find, and why?*"
EXERCISES = re.compile(r"^## (\d+\. )?Exercises\s*$", re.M)
NUMBERED = re.compile(r"^# (\d+)\.")  # the first line of a worked solution: "# 2. ..."
HEADING = re.compile(r"^#{1,6} ", re.M)


def is_solution(cell) -> bool:
    """Whether a cell carries the ``solution`` tag."""
    return SOLUTION in cell.get("metadata", {}).get("tags", [])


def exercises_index(nb) -> int | None:
    """The index of the lesson's exercises cell (a markdown cell with ``## Exercises``), or None."""
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and EXERCISES.search(c.source)), None)


def solutions_section(nb) -> range:
    """The cells after the exercises cell up to and including the next cell with a ``## `` heading
    (``## Recap`` or an appendix): where the worked solutions live. Empty without exercises."""
    start = exercises_index(nb)
    if start is None:
        return range(0)
    for i in range(start + 1, len(nb.cells)):
        if nb.cells[i].cell_type == "markdown" and re.search(r"^## ", nb.cells[i].source, re.M):
            return range(start + 1, i + 1)
    return range(start + 1, len(nb.cells))


def untagged_solutions(nb) -> list[int]:
    """Indices of code cells in the solutions section that start like a worked solution (``# K.``)
    but lack the ``solution`` tag: they would leak into a student copy."""
    return [i for i in solutions_section(nb)
            if nb.cells[i].cell_type == "code" and NUMBERED.match(nb.cells[i].source) and not is_solution(nb.cells[i])]


def exercise_texts(markdown: str) -> dict[int, str]:
    """``{K: text}`` of the numbered exercises below the cell's ``## Exercises`` heading, ``**bold**`` removed."""
    heading = EXERCISES.search(markdown)
    body = markdown[heading.end() if heading else 0:].split(SOLUTIONS_HEADING)[0]
    texts, current = {}, None
    for line in body.splitlines():
        item = re.match(r"^(\d+)\.\s+(.*)", line)
        if item:
            current = int(item.group(1))
            texts[current] = item.group(2)
        elif current is not None and line.startswith("   ") and line.strip():
            texts[current] += "\n" + line.strip()
        elif not line.strip():
            current = None
    return {k: v.replace("**", "") for k, v in texts.items()}


def parse_python(source: str):
    """The cell's AST, with IPython's ``!shell`` and ``%magic`` lines read as ``pass``; None if it
    still does not parse."""
    lines = [re.sub(r"^(\s*)[!%].*", r"\1pass", line) for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def module_bindings(tree) -> tuple[set, set]:
    """``(assigned, imported)``: the names a cell binds at module level (assignments, loop and
    ``with`` targets, functions, classes; and imports), not the locals of its functions."""
    assigned, imported = set(), set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            assigned.add(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            assigned.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            assigned.add(node.name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return assigned, imported


def names_used_before_bound(tree) -> list[str]:
    """Global names a cell reads before (by line) binding them itself, in order of first use: what it
    takes from earlier cells. Parameters and locals of its own functions and lambdas are left out, and
    a function body's reads count only for names the cell never binds (the body runs when called)."""
    first_store, loads = {}, []

    def visit(node, local: frozenset, in_function: bool):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
            params |= {a.arg for a in (args.vararg, args.kwarg) if a}
            inner = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            inner |= {n.name for n in ast.walk(node) if isinstance(n, ast.ExceptHandler) and n.name}
            if not isinstance(node, ast.Lambda):
                first_store.setdefault(node.name, node.lineno)
            local, in_function = local | params | inner, True
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            local = local | {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.ClassDef) or (isinstance(node, ast.ExceptHandler) and node.name):
            first_store.setdefault(node.name, node.lineno)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                first_store.setdefault((alias.asname or alias.name).split(".")[0], node.lineno)
        elif isinstance(node, ast.Name) and node.id not in local:
            if isinstance(node.ctx, ast.Store):
                first_store.setdefault(node.id, node.lineno)
            else:
                loads.append((node.lineno, node.col_offset, node.id, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, local, in_function)

    visit(tree, frozenset(), False)
    seen, used = set(), []
    for line, _, name, deferred in sorted(loads):
        bound_first = name in first_store if deferred else line > first_store.get(name, line)
        if name not in seen and not bound_first:
            seen.add(name)
            used.append(name)
    return used


def lesson_variables(cells) -> set:
    """Names the lesson's own code cells bind (not import-only names): what a learner can use."""
    assigned = set()
    for cell in cells:
        tree = parse_python(cell.source) if cell.cell_type == "code" and not is_solution(cell) else None
        if tree is not None:
            assigned |= module_bindings(tree)[0]
    return assigned


def check_call(source: str) -> str | None:
    """The ``check(...)`` call of a worked solution's final ``assert check(...)``, as written."""
    tree = parse_python(source)
    for node in ast.walk(tree) if tree is not None else ():
        if (isinstance(node, ast.Assert) and isinstance(node.test, ast.Call)
                and isinstance(node.test.func, ast.Name) and node.test.func.id == "check"):
            return ast.get_source_segment(source, node.test)
    return None


def stub_source(eid: str, text: str, offered: list[str], call: str | None) -> str:
    """The source of a student's exercise cell: what to do, what the lesson offers, how to check,
    and ``raise YourTurn(eid)`` for the learner to replace with code."""
    from labkit.course.check import CHECKS

    lines = [f"# Exercise {eid}: " + text.splitlines()[0]] + ["#   " + t for t in text.splitlines()[1:]]
    if offered:
        lines += ["#", "# From the lesson you have: " + ", ".join(offered)]
    if call:
        lines += ["#", "# When you have an answer, check it (✓, or a hint):", "#     " + call.replace("\n", "\n#     ")]
        if eid in CHECKS:
            lines.append(f"#   the answer: {CHECKS[eid].answer}")
    lines += ["from labkit.course.check import YourTurn, check", "", f'raise YourTurn("{eid}")']
    return "\n".join(lines)


def reading_source(markdown: str) -> str:
    """A solution's discussion replaced by an invitation to write one's own; a heading that
    follows it in the same cell (``## Recap``...) is kept with everything below it."""
    heading = HEADING.search(markdown)
    return READING + ("\n\n" + markdown[heading.start():] if heading else "")


def student_copy(nb) -> tuple:
    """``(student notebook, exercise ids stubbed, readings replaced)`` of an instructor's notebook.

    Refuses (ValueError) a notebook whose worked solutions are not all tagged, or a tagged cell
    without an exercise id: either would put an answer into the student copy."""
    leaks = untagged_solutions(nb)
    if leaks:
        raise ValueError(f"cells {leaks} look like worked solutions ('# K. ...') but lack the {SOLUTION!r} tag")
    copy = nbformat.from_dict(nb)   # a deep copy: the instructor's notebook stays as it is
    start = exercises_index(nb)
    texts = exercise_texts(nb.cells[start].source) if start is not None else {}
    if start is not None:
        copy.cells[start].source = nb.cells[start].source.replace(SOLUTIONS_HEADING, ANSWERS_HEADING)
    stubbed, readings = [], []
    for i, cell in enumerate(nb.cells):
        if not is_solution(cell):
            continue
        eid = cell.metadata.get("exercise")
        if not eid:
            raise ValueError(f"cell {i} is tagged {SOLUTION!r} but has no exercise id in its metadata")
        if cell.cell_type == "code":
            tree = parse_python(cell.source)
            available = lesson_variables(nb.cells[:i])
            offered = [n for n in (names_used_before_bound(tree) if tree else []) if n in available]
            text = texts.get(int(eid.split(".")[1]), "write your solution here.")
            new = nbformat.v4.new_code_cell(stub_source(eid, text, offered, check_call(cell.source)),
                                            metadata={"tags": [STUB_TAG], "exercise": eid})
            stubbed.append(eid)
        else:
            new = nbformat.v4.new_markdown_cell(reading_source(cell.source), metadata={"exercise": eid})
            readings.append(eid)
        if "id" in cell:
            new.id = cell.id
        copy.cells[i] = new
    return copy, stubbed, readings


def write_student_copies(src, out) -> list[Path]:
    """Write a student copy of every lesson (``NN_*.ipynb``) in ``src`` into ``out``; print each one."""
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.glob("[0-9][0-9]_*.ipynb")):
        try:
            nb, stubbed, readings = student_copy(nbformat.read(path, as_version=4))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        target = out / path.name
        nbformat.write(nb, target)
        what = (f"exercises {', '.join(stubbed)} left to the learner, {len(readings)} reading(s) blanked"
                if stubbed or readings else "no exercises: copied unchanged")
        print(f"wrote {target}: {what}")
        written.append(target)
    return written


def main(argv=None) -> int:
    """``python -m labkit.course.student NOTEBOOKS --out FOLDER``."""
    parser = argparse.ArgumentParser(prog="python -m labkit.course.student", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="?", default="notebooks", help="the instructor's notebooks (default: notebooks)")
    parser.add_argument("--out", default="student", help="where the student copies go (default: student)")
    args = parser.parse_args(argv)
    try:
        written = write_student_copies(args.notebooks, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not written:
        print(f"error: no lessons (NN_*.ipynb) in {args.notebooks}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
