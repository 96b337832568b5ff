"""Detection-quality metrics on a hand-made world whose figures are worked out by hand."""

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.risk import Level
from services.evaluation.changes import Change
from services.evaluation.metrics import Timeline, assess_run, merge, percentile, summarise


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2025, month, day, hour, tzinfo=UTC)


def iso(month: int, day: int) -> str:
    return f"2025-{month:02d}-{day:02d}T00:00:00Z"


def trajectory(tid: str, kind: str, location: str, start: str, expected: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "kind": kind,
        "scope": "location",
        "subject": location,
        "locations": [location],
        "start": start,
        "end": None,
        "recovered": extra.get("recovered"),
        "expected_min_level": expected,
        "expected_level_before_major": None,
        "major_from": None,
        "major_event_id": None,
        "note": "",
    }


# 200 days from 1 January: 20 days of warm-up leave 180 observed days.
TRUTH: dict[str, Any] = {
    "start": iso(1, 1),
    "end": iso(7, 20),
    "trajectories": [
        trajectory("T1", "gradual_decline", "L1", iso(2, 1), "moderate"),
        trajectory("T2", "manager_departure", "L2", iso(3, 1), "moderate"),
        trajectory("T3", "recovery", "L3", iso(1, 10), "moderate", recovered=iso(3, 1)),
        trajectory("T4", "under_reporting", "L4", iso(1, 15), "minor"),
    ],
    "severe_events": [
        {
            "location_id": "O1",
            "time": iso(4, 1),
            "event_id": "e",
            "type": "safeguarding_concern",
            "in_trajectory": False,
        }
    ],
    "ordinary_locations": ["O1", "O2", "O3", "O4", "O5", "O6"],
}


def change(subject: str, when: datetime, seq: int, old: Level, new: Level, *rules: str) -> Change:
    return Change("location", subject, when, seq, old, new, rules)


CHANGES = [
    change("L1", at(2, 5), 1, Level.none, Level.minor, "complaints_rising"),
    change("L1", at(2, 11, 0), 2, Level.minor, Level.moderate, "signs_of_neglect"),  # 10 days after the start
    change("L2", at(3, 21, 0), 1, Level.none, Level.moderate, "concerns_about_manager"),  # 20 days
    change("L3", at(4, 1), 1, Level.none, Level.moderate, "triangulated_concern"),  # after it recovered
    change("O1", at(4, 2), 1, Level.none, Level.major, "serious_abuse_or_neglect"),  # its severe event
    change("O2", at(5, 1), 1, Level.none, Level.moderate, "repeated_injuries"),  # no cause: false alarm
    change("O2", at(6, 1), 2, Level.moderate, Level.none),
    change("O3", at(1, 5), 1, Level.none, Level.minor, "accumulated_concern"),  # in the warm-up
    change("O3", at(2, 1), 2, Level.minor, Level.none),
]


def test_hand_computed_figures() -> None:
    summary = summarise(assess_run("s", TRUTH, CHANGES, {}, warmup_days=20))
    overall = summary.overall
    # Declines expected at Moderate+: T1 (10 days), T2 (20 days), T3 (missed: only after recovery).
    assert overall.planted == 3
    assert overall.recall == pytest.approx(2 / 3)
    assert overall.median_days == pytest.approx(15.0)
    assert overall.p90_days == pytest.approx(19.0)
    # Escalations to Moderate+: L1, L2, O1 (severe event) true; L3 (after recovery) and O2 false.
    assert overall.alerts == 5
    assert overall.precision == pytest.approx(3 / 5)
    # One false alert at 6 ordinary locations over 180 days.
    assert summary.false_alerts_per_100_per_month == pytest.approx(1 / (6 * 180 / (365.25 / 12)) * 100)
    # Quiet ordinary locations (O2..O6; O1 had a severe event): O2's two changes and O3's fall
    # after the warm-up, over 5 x 180 days; O2 changed twice in 180 days.
    assert summary.flapping_per_90 == pytest.approx(3 / (5 * 180) * 90)
    assert summary.flapping_max_per_90 == pytest.approx(1.0)
    # Daily samples at midnight: O2 Moderate on 2 May .. 1 June (31), O3 Minor on 22 Jan .. 1 Feb (11).
    assert summary.ordinary_shares[Level.moderate] == pytest.approx(31 / 900)
    assert summary.ordinary_shares[Level.minor] == pytest.approx(11 / 900)
    assert summary.ordinary_shares[Level.none] == pytest.approx(858 / 900)
    assert summary.severe_events == 1 and summary.severe_at_major == pytest.approx(1.0)
    # The under-reporter started 14 days in: no year of history, so not counted.
    assert summary.under_reporting_eligible == 0 and summary.under_reporting_flagged is None
    by_kind = {k.kind: k for k in summary.kinds}
    assert by_kind["recovery"].recall == 0.0 and by_kind["recovery"].precision == 0.0
    assert by_kind["gradual_decline"].median_days == pytest.approx(10.0)
    assert by_kind["ordinary"].alerts == 2 and by_kind["ordinary"].precision == pytest.approx(0.5)


def test_misses_and_false_alarms_carry_their_rules() -> None:
    assessment = assess_run("s", TRUTH, CHANGES, {}, warmup_days=20)
    missed = {d.trajectory: d for d in assessment.detections if not d.detected}
    assert set(missed) == {"T3", "T4"}
    assert missed["T3"].rules == () and missed["T3"].max_level == Level.none
    wrong = [(e.location, e.why, e.rules) for e in assessment.escalations if not e.true]
    assert wrong == [("L3", "after recovery", ("triangulated_concern",)), ("O2", "no cause", ("repeated_injuries",))]


def test_under_reporter_with_a_year_of_history_is_flagged_at_its_expected_level() -> None:
    truth = {**TRUTH, "end": "2026-07-01T00:00:00Z"}
    truth["trajectories"] = [trajectory("T9", "under_reporting", "L9", "2026-02-01T00:00:00Z", "minor")]
    flagged = [change("L9", datetime(2026, 3, 1, tzinfo=UTC), 1, Level.none, Level.minor, "peers_low")]
    summary = summarise(assess_run("s", truth, flagged, {}))
    assert summary.under_reporting_eligible == 1 and summary.under_reporting_flagged == 1.0
    # Minor is its expected level, but not an alert at Moderate+: it is not a decline.
    assert summary.overall.planted == 0


def test_pooled_figures_are_sums_of_counts() -> None:
    one = assess_run("a", TRUTH, CHANGES, {}, warmup_days=20)
    two = assess_run("b", TRUTH, CHANGES[:3], {}, warmup_days=20)
    pooled = summarise(merge([one, two]))
    # 6 declines, 4 detected; 5 + 2 alerts, 3 + 2 true.
    assert pooled.overall.recall == pytest.approx(4 / 6)
    assert pooled.overall.precision == pytest.approx(5 / 7)


def test_already_at_moderate_when_a_decline_starts_counts_for_recall_not_for_time_to_detect() -> None:
    truth = {**TRUTH, "trajectories": [trajectory("T1", "gradual_decline", "L1", iso(2, 1), "moderate")]}
    early = [change("L1", at(1, 20), 1, Level.none, Level.moderate, "signs_of_neglect")]
    detection = assess_run("s", truth, early, {}).detections[0]
    assert detection.detected and detection.started_elevated and detection.days_to_detect is None
    summary = summarise(assess_run("s", truth, early, {}))
    assert summary.overall.recall == 1.0 and summary.overall.median_days is None


def test_timeline_and_percentile() -> None:
    timeline = Timeline(CHANGES)
    assert timeline.level_at("L1", at(2, 5)) == Level.minor
    assert timeline.level_at("L1", at(2, 4)) == Level.none
    assert timeline.level_at("nobody", at(2, 4)) == Level.none
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert percentile([], 0.9) is None
