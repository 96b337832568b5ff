"""What the baselines see of a run's events."""

from datetime import UTC, datetime, timedelta

from schemas.examples import example_event
from services.evaluation.signals import SIGNAL_INDEX, Observations, Observer, signal_name

START = datetime(2025, 1, 1, tzinfo=UTC)
HOME = "1-101234567"


def test_signals_are_read_from_the_contract() -> None:
    assert signal_name("missed_visit", {"outcome": "missed", "time_critical": True}) == "missed_time_critical_visit"
    assert signal_name("missed_visit", {"outcome": "late", "time_critical": True}) == "late_visit"
    assert signal_name("health_use", {"kind": "ae_attendance", "repeat_injury": True}) == "repeat_injury"
    assert signal_name("health_use", {"kind": "missed_gp_appointment"}) == "missed_appointment"
    assert signal_name("ccg_flag", {"concern": "infection_outbreak"}) is None  # seasonal
    assert signal_name("ccg_flag", {"concern": "pressure_ulcers"}) == "commissioner_flag"
    assert signal_name("statutory_notification", {"category": "death"}) is None
    assert signal_name("statutory_notification", {"category": "abuse_allegation"}) == "notification_of_harm"
    assert signal_name("care_review", {"finding_level": "low"}) is None
    assert signal_name("contract_monitoring", {"finding_level": "high"}) == "poor_finding"
    assert signal_name("workforce", {"agency_staff_share": 0.4, "training_gaps": True}) == "workforce_gap"
    assert signal_name("workforce", {"agency_staff_share": 0.4}) is None
    assert signal_name("cqc_rating", {"overall": "inadequate"}) is None


def test_the_observer_keeps_each_event_once_and_when_severe_ones_arrived() -> None:
    observer = Observer([(HOME, 30, "care_home")], START, 365)
    complaint = example_event("complaint", event_id="c1", location_id=HOME, time=START + timedelta(days=2))
    serious = example_event(
        "safeguarding_concern",
        event_id="s1",
        location_id=HOME,
        time=START + timedelta(days=3),
        data={"abuse_type": "neglect", "serious": True, "linked_death": False},
    )
    elsewhere = example_event("complaint", event_id="x", location_id="1-109999999", time=START + timedelta(days=5))
    observer.event(complaint)
    observer.event(elsewhere, own=False)  # another process's: the stream's time moves on
    observer.event(serious)  # arrives two days after it happened
    observer.event(complaint)  # resent
    out = observer.out
    assert out.location == [0, 0] and out.time == [2.0, 3.0]
    assert out.signal == [SIGNAL_INDEX["complaint"], SIGNAL_INDEX["safeguarding_concern"]]
    assert out.concern == [True, True]
    assert out.arrivals == {"s1": 5.0}
    assert Observations.from_json(out.as_json()) == out
    assert out.concern_times() == [[2.0, 3.0]]
