"""The count-only family: exact alarm intervals, per-capacity thresholds, and its 3-in-90
member against the baseline the earlier reports used."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from schemas.examples import example_event
from schemas.risk import Level
from services.evaluation.alarms import at_or_above, steps
from services.evaluation.baseline import CountBaseline
from services.evaluation.count_family import CountRule, count_intervals, grid, rule_alarms
from services.evaluation.signals import Observer

START = datetime(2025, 1, 1, tzinfo=UTC)


def test_intervals_start_at_the_nth_concern_and_end_when_the_window_passes_the_oldest() -> None:
    # Three in 90 days: on at day 20 (the third); days 10, 20, 60 keep it to 100, and
    # 20, 60, 95 to 110; then two are left.
    assert count_intervals([1.0, 10.0, 20.0, 60.0, 95.0], 3, 90.0, 365.0) == [(20.0, 110.0)]
    assert count_intervals([1.0, 10.0, 20.0, 150.0, 160.0, 170.0], 3, 90.0, 365.0) == [(20.0, 91.0), (170.0, 240.0)]


def test_a_concern_arriving_as_another_leaves_does_not_end_the_alarm() -> None:
    assert count_intervals([0.0, 5.0, 9.0, 90.0], 3, 90.0, 365.0) == [(9.0, 95.0)]


def test_intervals_stop_at_the_end_of_the_run_and_need_the_threshold() -> None:
    assert count_intervals([300.0, 310.0], 2, 90.0, 320.0) == [(310.0, 320.0)]
    assert count_intervals([1.0, 200.0], 2, 90.0, 365.0) == []
    assert count_intervals([], 1, 90.0, 365.0) == []


def test_per_capacity_thresholds_scale_with_size_above_a_floor() -> None:
    rule = CountRule(90.0, per_10=1.5)
    assert [rule.threshold_for(c) for c in (3, 20, 40, 100)] == [2, 3, 6, 15]
    assert CountRule(90.0, threshold=4).threshold_for(100) == 4
    assert {r.family for r in grid()} == {"absolute", "per capacity"}
    assert len({r.label for r in grid()}) == len(grid())


def test_three_in_90_days_is_the_baseline_of_the_earlier_reports() -> None:
    rng = random.Random(5)
    kinds = ["complaint", "safeguarding_concern", "ccg_flag", "missed_visit", "health_use"]
    locations = ["1-101234567", "1-101234568", "1-101234569"]
    events = []
    for n in range(60):
        when = START + timedelta(days=rng.uniform(0, 365))
        events.append(example_event(rng.choice(kinds), event_id=f"e{n}", location_id=rng.choice(locations), time=when))
    events.sort(key=lambda e: e["time"])
    observer = Observer([(loc, 20, "care_home") for loc in locations], START, 365)
    for event in events:
        observer.event(event)
    ours = rule_alarms(CountRule(90.0, threshold=3), observer.out.concern_times(), [20] * 3, locations, 365.0)
    end = START + timedelta(days=365)
    theirs = at_or_above(steps(CountBaseline().feed(events).changes(until=end), START), Level.moderate, 365.0)
    assert ours.keys() == theirs.keys() and sum(len(v) for v in ours.values()) >= 3
    for loc in ours:
        assert [t for iv in ours[loc] for t in iv] == pytest.approx([t for iv in theirs[loc] for t in iv], abs=1e-5)
