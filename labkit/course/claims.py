"""A lesson's claims, readings and headline numbers.

- :func:`claim` checks one claim on a number the lesson just measured and prints its margin;
- :func:`reading` prints one sentence about what *this run* measured (what varies between runs);
- :func:`checks_table` shows every claim the lesson made, as one table (a lesson's Checks);
- :func:`record` keeps a headline number.

Under ``make course`` (:mod:`labkit.course.runner`) claims, readings and records go into the
lesson's metrics file and from there into the report, where two runs can be compared."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


METRICS_ENV = "LABKIT_COURSE_METRICS"
_CLAIMS: dict[str, dict] = {}  # this kernel's claims, statement -> row of the Checks table
_READINGS: list[str] = []  # this kernel's readings, in order


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


def _rounded(value: float) -> float:
    """Four decimals (0.912345 -> 0.9123, 12345.6789 -> 12345.6789); below 1, four significant
    digits, so that a tiny difference (3.7672e-05) is not recorded as 0.0."""
    return round(value, 4) if abs(value) >= 1 else float(f"{value:.4g}")


def record(**numbers) -> dict:
    """Record a lesson's headline numbers (``record(accuracy=0.91, minutes=3.2)``).

    Under ``make course`` they go into the summary; in a normal session this just returns
    them, so the call is harmless anywhere."""
    clean = {k: (_rounded(float(v)) if isinstance(v, (int, float)) else v) for k, v in numbers.items()}
    _update_metrics(clean)
    return clean


def claim(statement: str, measured: float, *, at_least: float | None = None,
          at_most: float | None = None, quiet: bool = False) -> float:
    """Check one of the lesson's claims on a number the lesson just measured, and show its margin.

        claim("LoRA beats the best prompt (paired 95% lower bound, points)", 100 * low, at_least=15)

    prints ``✓ LoRA beats ...: 30.1 >= 15 (margin 15.1)`` and returns the margin; when the claim
    does not hold it raises ``AssertionError`` with the same line. Give both bounds for a band
    (the margin is then the distance to the nearer edge). A claim's threshold should sit further
    from the measured value than the value moves between seeds: ``bench/course_margins.py``
    re-runs the lessons with other ``LABKIT_SEED`` values and prints every claim's margins.
    ``quiet=True`` prints nothing when the claim holds: the lesson shows it later in
    :func:`checks_table`."""
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
    _CLAIMS[statement] = {"claim": statement, "measured": f"{measured:.4g}", "must be": bound,
                          "margin": f"{margin:.3g}", "holds": "✓" if holds else "✗"}
    if not holds:
        raise AssertionError(line)
    if not quiet:
        print(line)
    return margin


def checks_table():
    """Every claim this lesson made, in the order made: the compact Checks table each lesson ends
    with (claim, measured, must be, margin, holds). A pandas Styler, so that a notebook shows each
    claim in full (a DataFrame cuts long text at 50 characters); its ``.data`` is the DataFrame.
    A claim that failed has already stopped the lesson with an ``AssertionError``."""
    import pandas as pd

    table = pd.DataFrame(list(_CLAIMS.values()), columns=["claim", "measured", "must be", "margin", "holds"])
    return table.set_index("claim").style.set_properties(**{"text-align": "left"})


def reading(sentence: str) -> None:
    """Print one "Reading:" line about this run's own numbers and keep it for the report.

        reading(f"in this run dropout ended at validation loss {d:.2f}, above the overfit run's {o:.2f}")

    Static prose says only what holds on every seed and CPU; what varies between runs is said
    here, from the numbers just measured, so that no sentence is contradicted by an output."""
    text = " ".join(sentence.split())
    if text not in _READINGS:
        _READINGS.append(text)
    _update_metrics({"readings": list(_READINGS)})
    print(f"Reading: {text}")
