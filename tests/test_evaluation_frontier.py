"""Frontiers of a swept baseline and what it does at the policy's precision."""

import pytest

from services.evaluation.frontier import Point, matched, pareto, recall_at


def pt(label: str, precision: float, recall: float, days: float | None = 100.0, **kinds: float) -> Point:
    return Point("count", "absolute", label, precision, recall, recall / 2, days, kinds, {k: days for k in kinds})


POINTS = [
    pt("a", 0.10, 1.00, 20.0, slow=1.0),
    pt("b", 0.30, 0.80, 60.0, slow=0.6),
    pt("dominated", 0.25, 0.50, 10.0, slow=0.9),
    pt("c", 0.60, 0.40, 120.0, slow=0.2),
    pt("d", 0.90, 0.10, 150.0, slow=0.0),
]


def test_the_frontier_keeps_what_nothing_beats_on_both_in_rising_precision() -> None:
    assert [p.label for p in pareto(POINTS)] == ["a", "b", "c", "d"]
    # Of two equal points, the sooner one.
    assert [p.label for p in pareto([pt("late", 0.5, 0.5, 90.0), pt("soon", 0.5, 0.5, 30.0)])] == ["soon"]


def test_matched_interpolates_between_the_bracketing_settings() -> None:
    m = matched(pareto(POINTS), 0.45)
    assert m is not None
    assert m.recall == pytest.approx(0.6) and m.recall90 == pytest.approx(0.3)
    assert m.median_days == pytest.approx(90.0)
    assert m.kinds["slow"] == pytest.approx(0.4) and m.kind_days["slow"] == pytest.approx(90.0)
    assert m.method == "interpolated between b and c"


def test_matched_says_when_no_setting_brackets_the_policy() -> None:
    above = matched(pareto(POINTS), 0.95)
    below = matched(pareto(POINTS), 0.05)
    assert above is not None and above.recall == 0.1 and "less precise than the policy" in above.method
    assert below is not None and below.recall == 1.0 and "more precise than the policy" in below.method
    assert matched([], 0.5) is None


def test_recall_at_works_on_bare_numbers() -> None:
    assert recall_at([0.1, 0.3, 0.25, 0.6], [1.0, 0.8, 0.5, 0.4], 0.45) == pytest.approx(0.6)
