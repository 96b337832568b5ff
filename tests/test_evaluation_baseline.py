"""The count-only baseline on hand-made streams."""

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.examples import example_event
from schemas.risk import Level
from services.evaluation.baseline import CountBaseline, is_concern

LOC = "1-101234567"
OTHER = "1-101234568"


def ev(n: int, short: str, when: datetime, data: dict[str, Any] | None = None, loc: str = LOC) -> dict[str, Any]:
    return example_event(short, event_id=f"e{n}", location_id=loc, time=when, data=data)


def day(month: int, d: int) -> datetime:
    return datetime(2025, month, d, 9, tzinfo=UTC)


def test_what_counts_as_a_concern() -> None:
    assert is_concern("complaint", {"category": "other", "severity": "low"})
    assert is_concern("police_flag", {"kind": "incident_attended", "care_related": False})
    assert is_concern("contract_monitoring", {"finding_level": "medium"})
    assert not is_concern("contract_monitoring", {"finding_level": "low"})
    assert is_concern("care_review", {"finding_level": "high"})
    assert not is_concern("care_review", {"finding_level": "low"})
    assert not is_concern("provider_incident", {"category": "medication_error", "harm": "low"})
    assert is_concern("statutory_notification", {"category": "abuse_allegation", "linked_to_safeguarding": False})
    assert is_concern("statutory_notification", {"category": "serious_injury", "linked_to_safeguarding": True})
    assert not is_concern("statutory_notification", {"category": "death", "linked_to_safeguarding": False})
    assert is_concern("cqc_rating", {"overall": "inadequate"})
    assert not is_concern("cqc_rating", {"overall": "requires_improvement"})
    assert not is_concern("missed_visit", {"outcome": "missed", "time_critical": True})
    assert not is_concern("health_use", {"kind": "ae_attendance"})
    assert not is_concern("workforce", {"manager_concerns": True})
    assert not is_concern("a_type_added_later", {})


def test_three_concerns_in_90_days_is_moderate_until_the_first_leaves_the_window() -> None:
    events = [
        ev(1, "complaint", day(1, 1)),
        ev(2, "missed_visit", day(1, 2), {"outcome": "missed", "time_critical": False}),  # not a concern
        ev(3, "safeguarding_concern", day(1, 10)),
        ev(3, "safeguarding_concern", day(1, 10)),  # resent: counts once
        ev(4, "contract_monitoring", day(1, 15), {"finding_level": "low", "key_questions": []}),  # not a concern
        ev(5, "ccg_flag", day(2, 1)),  # the third concern
        ev(6, "complaint", day(1, 20), loc=OTHER),
    ]
    changes = CountBaseline().feed(events).changes()
    assert [(c.subject, c.time, c.old, c.new, c.sequence) for c in changes] == [
        (LOC, day(2, 1), Level.none, Level.moderate, 1),
        (LOC, day(1, 1) + timedelta(days=90), Level.moderate, Level.none, 2),
    ]
    assert changes[0].rules == ("count_of_concerns",) and changes[1].rules == ()


def test_a_concern_arriving_as_another_leaves_keeps_the_level() -> None:
    first = day(1, 1)
    events = [
        ev(1, "complaint", first),
        ev(2, "complaint", day(1, 5)),
        ev(3, "complaint", day(1, 9)),
        # Exactly 90 days after the first: it leaves (the window is (t - 90 days, t]) as this arrives.
        ev(4, "complaint", first + timedelta(days=90)),
    ]
    changes = CountBaseline().feed(events).changes()
    assert [(c.time, c.new) for c in changes] == [
        (day(1, 9), Level.moderate),
        (day(1, 5) + timedelta(days=90), Level.none),
    ]


def test_changes_stop_at_the_end_of_the_run() -> None:
    events = [ev(n, "complaint", day(1, n)) for n in range(1, 4)]
    changes = CountBaseline().feed(events).changes(until=day(2, 1))
    assert [c.new for c in changes] == [Level.moderate]
