"""The per-level measures on a hand-made world whose figures are worked out by hand."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.risk import Level
from services.evaluation.alarms import at_or_above, steps, time_at
from services.evaluation.changes import Change
from services.evaluation.measures import MONTH_DAYS, World, figures, kind_figures, tally
from services.evaluation.sweep import severe_at_major, stuck_at_minor

START = datetime(2025, 1, 1, tzinfo=UTC)


def iso(day: float) -> str:
    return (START + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")


def trajectory(tid: str, kind: str, locations: list[str], start: float, expected: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "kind": kind,
        "scope": "organisation" if len(locations) > 1 else "location",
        "subject": "P1" if len(locations) > 1 else locations[0],
        "locations": locations,
        "start": iso(start),
        "recovered": iso(extra["recovered"]) if "recovered" in extra else None,
        "expected_min_level": expected,
        "expected_level_before_major": None,
    }


# 200 days; 20 days of warm-up leave 180 observed days.
TRUTH: dict[str, Any] = {
    "start": iso(0),
    "end": iso(200),
    "trajectories": [
        trajectory("T1", "gradual_decline", ["L1"], 31, "moderate"),
        trajectory("T2", "staffing_collapse", ["L2"], 59, "moderate"),
        trajectory("T3", "recovery", ["L3"], 9, "moderate", recovered=59),
        trajectory("T4", "under_reporting", ["L4"], 14, "minor"),
        trajectory("T5", "corporate_failure", ["L5", "L6"], 100, "moderate"),
    ],
    "severe_events": [
        {"location_id": "O1", "time": iso(90), "event_id": "sev-1", "in_trajectory": False},
    ],
    "ordinary_locations": ["O1", "O2", "O3", "O4", "O5", "O6"],
}

ALARMS = {
    "L1": [(41.0, 200.0)],  # 10 days after its start
    "L2": [(150.0, 160.0)],  # 91 days: within 270, not within 90
    "L3": [(100.0, 120.0)],  # after it recovered: a miss and a false alarm
    "L4": [(10.0, 30.0)],  # already on when it started: found, no days; the alert itself is false
    "L6": [(130.0, 140.0)],  # one of the corporate failure's locations, 30 days in
    "O1": [(90.5, 100.0)],  # its severe event: true
    "O2": [(100.0, 130.0), (140.0, 150.0)],  # false twice
    "O3": [(5.0, 25.0)],  # false, in the warm-up
}


def test_hand_computed_figures_at_both_levels() -> None:
    world = World.from_truth("s", TRUTH)
    t = tally(world, ALARMS, warmup_days=20)
    moderate = figures(t, Level.moderate)
    # Counted at Moderate+: T1, T2, T3, T5 (the under-reporter is expected at Minor).
    assert moderate.planted == 4
    assert moderate.recall90 == pytest.approx(2 / 4) and moderate.recall270 == pytest.approx(3 / 4)
    assert moderate.median_days == pytest.approx(30.0)  # 10, 30, 91
    assert moderate.alerts == 9 and moderate.precision == pytest.approx(4 / 9)
    # Quiet ordinary locations O2..O6 over 180 days: O2 on 40 days, O3 on 5 after the warm-up.
    assert moderate.ordinary_share == pytest.approx(45 / 900)
    # O2 in and out twice, O3 out once, after the warm-up.
    assert moderate.flapping_per_90 == pytest.approx(5 / 900 * 90)
    assert moderate.false_per_100_month == pytest.approx(2 / (6 * 180 / MONTH_DAYS) * 100)
    minor = figures(t, Level.minor)
    assert minor.planted == 5 and minor.recall270 == pytest.approx(4 / 5) and minor.elevated == 1
    assert minor.median_days == pytest.approx(30.0)
    kinds = kind_figures(t, Level.moderate)
    assert "under_reporting" not in kinds and kinds["recovery"].recall270 == 0.0
    assert kinds["recovery"].precision == 0.0 and kinds["corporate_failure"].alerts == 1
    assert kinds["ordinary"].alerts == 4 and kinds["ordinary"].precision == pytest.approx(1 / 4)
    # The bootstrap's units: the corporate failure's locations together.
    assert world.cluster_of("L5") == world.cluster_of("L6") == "s/T5"
    assert t.alerts["s/T5"] == 1 and t.true_alerts["s/O1"] == 1


def test_a_short_burst_is_active_until_it_has_passed() -> None:
    truth = {**TRUTH, "trajectories": [trajectory("B1", "short_burst", ["L7"], 50, "minor", recovered=80)]}
    world = World.from_truth("s", truth)
    t = tally(world, {"L7": [(60.0, 70.0), (120.0, 130.0)]}, warmup_days=20)
    # The alert during the burst is true; the one 40 days after it passed is not.
    assert t.alerts["s/B1"] == 2 and t.true_alerts["s/B1"] == 1
    assert figures(t, Level.minor).recall270 == 1.0 and figures(t, Level.moderate).planted == 0


def change(subject: str, day: float, seq: int, old: Level, new: Level) -> Change:
    return Change("location", subject, START + timedelta(days=day), seq, old, new, ("r",))


def test_policy_changes_become_intervals_at_each_level() -> None:
    changes = [
        change("L1", 40, 1, Level.none, Level.minor),
        change("L1", 50, 2, Level.minor, Level.moderate),
        change("L1", 60, 3, Level.moderate, Level.major),
        change("L1", 70, 4, Level.major, Level.minor),
        change("L1", 80, 5, Level.minor, Level.none),
    ]
    levels = steps(changes, START)
    assert at_or_above(levels, Level.minor, 200)["L1"] == [(40.0, 80.0)]
    assert at_or_above(levels, Level.moderate, 200)["L1"] == [(50.0, 70.0)]  # one alert, not two
    assert at_or_above(levels, Level.major, 200)["L1"] == [(60.0, 70.0)]
    assert time_at(levels["L1"], Level.minor, 0, 200) == pytest.approx(20.0)
    assert time_at(levels["L1"], Level.minor, 45, 75) == pytest.approx(10.0)


def test_planted_stuck_at_minor_and_severe_events_at_major_within_a_day_of_arriving() -> None:
    world = World.from_truth("s", TRUTH)
    levels = steps(
        [
            change("L1", 35, 1, Level.none, Level.minor),  # Minor for 165 days: stuck
            change("L2", 60, 1, Level.none, Level.minor),
            change("L2", 100, 2, Level.minor, Level.moderate),  # reached Moderate: not stuck
            change("O1", 91.2, 1, Level.none, Level.major),
        ],
        START,
    )
    assert stuck_at_minor(world, levels) == ["s T1"]
    major = at_or_above(levels, Level.major, world.days)
    # The event happened on day 90 but reached the system on day 90.5: Major 0.7 days later.
    assert severe_at_major(world, major, {"sev-1": 90.5}) == (1, 1)
    assert severe_at_major(world, major, {}) == (0, 1)
