"""A lesson's claims and headline numbers: :func:`claim` checks one claim on a number the lesson
just measured and prints its margin; :func:`record` keeps a headline number. Under ``make course``
(:mod:`labkit.course.runner`) both go into the lesson's metrics file and from there into the report."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


METRICS_ENV = "LABKIT_COURSE_METRICS"


def _update_metrics(update: dict) -> None:
    """Merge ``update`` into the running lesson's metrics file (under ``make course``), under its
    lock and through a temporary file, so a crash or a second writer never leaves half a file."""
    path = os.environ.get(METRICS_ENV)
    if not path:
        return
    from labkit.cache import atomic_file, locked

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
