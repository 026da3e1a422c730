"""Pytest hooks for the whole repo: report each lesson notebook's wall time after a run."""

import time
from collections import defaultdict

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
