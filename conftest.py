"""Pytest hooks for the whole repo: lesson cells get nbval's time limit, and each lesson notebook's wall time is reported after a run."""

import time
from collections import defaultdict

import pytest

_notebook_seconds = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook wall time")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{path:45s} {seconds:7.1f} s")
    terminalreporter.write_line(f"{'all notebooks':45s} {sum(_notebook_seconds.values()):7.1f} s")


NOTEBOOK_CELL_TIMEOUT = 1800   # seconds, as the Makefile's --nbval-cell-timeout


def pytest_collection_modifyitems(items):
    """A lesson's cells train real models: they get nbval's cell limit, not a unit test's."""
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.timeout(NOTEBOOK_CELL_TIMEOUT))
