"""bench/course_margins.py: the margin table (the lesson runs themselves are not part of the tests)."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("course_margins", Path(__file__).resolve().parents[1] / "bench" / "course_margins.py")
margins = importlib.util.module_from_spec(spec)
spec.loader.exec_module(margins)


def _row(claims, passed=True):
    return {"passed": passed, "metrics": {"claims": claims}}


def test_margin_table_flags_a_claim_whose_margin_is_within_its_seed_spread():
    by_seed = {
        0: {"05_x": _row({"gain": {"measured": 0.10, "bound": ">= 0", "margin": 0.10},
                          "slope": {"measured": -0.50, "bound": ">= -0.65 and <= -0.35", "margin": 0.15}})},
        1: {"05_x": _row({"gain": {"measured": 0.02, "bound": ">= 0", "margin": 0.02},
                          "slope": {"measured": -0.48, "bound": ">= -0.65 and <= -0.35", "margin": 0.13}})},
    }
    rows = {r["claim"]: r for r in margins.margin_table(by_seed)}
    assert rows["gain"]["spread"] == 0.08 and rows["gain"]["min_margin"] == 0.02 and not rows["gain"]["sound"]
    assert rows["slope"]["sound"]                       # margin 0.13 > spread 0.02
    md = margins.to_markdown(list(rows.values()), [0, 1])
    assert "| 05 | gain | >= 0 | 0.1 | 0.02 | 0.08 | 0.02 | **NO** |" in md


def test_a_claim_missing_for_one_seed_is_not_sound():
    by_seed = {0: {"01_x": _row({"a": {"measured": 1.0, "bound": ">= 0", "margin": 1.0}})},
               1: {"01_x": _row({}, passed=False)}}
    (row,) = margins.margin_table(by_seed)
    assert not row["sound"] and "not reached" in margins.to_markdown([row], [0, 1])
