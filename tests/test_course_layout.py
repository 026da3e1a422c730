"""The course's shape: every lesson follows the skeleton, and the README lists every lesson."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_lessons():
    assert NOTEBOOKS, "no lesson notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_follows_the_skeleton(path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# Lesson {path.name[:2]}")
    for heading in ("Learning objectives", "Exercises", "Solutions", "Recap"):
        assert heading in markdown, f"{path.name} has no '{heading}'"
    assert "google.colab" in nb.cells[1].source, "the first code cell sets up Colab"
    # every lesson checks a claim on what it measured (lesson 00, setup, asserts the machine is ready)
    claims = r"^\s*assert " if path.name.startswith("00") else r"^\s*claim\(\s*\""
    assert re.search(claims, code, flags=re.M), f"{path.name} checks no claim on what it measured"
    assert "record(" in code, f"{path.name} records no headline numbers for `make course`"
    assert f'lesson_time("{path.name[:2]}")' in nb.cells[2].source, f"{path.name} does not open with its measured time"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        f"{path.name} is committed with outputs; clear them"


def test_every_lesson_has_a_measured_time():
    import json

    times = json.loads((ROOT / "labkit" / "lesson_times.json").read_text())
    for path in NOTEBOOKS:
        measured = times.get(path.name[:2], {})
        assert measured and all(0 < m["minutes"] < 60 for m in measured.values()), f"{path.name}: no measured time"


def test_readme_lists_every_lesson():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme, f"README does not link {path.name}"
