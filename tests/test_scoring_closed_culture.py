"""Closed-culture signals (services/scoring/rules/closed_culture.py): staff and police
raising concerns more than the service's own history predicts while its own reports fall
below what its history and size predict sets Moderate, explained with both; either alone
does not."""

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import Event
from schemas.risk import Level
from services.scoring.engine import compiled
from services.scoring.model import next_due
from tests.scoring_policies import feed, small_policy
from tests.test_scoring_model import HOME, ev

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CLOSED_CULTURE = """
closed_culture:
  - id: closed_culture
    description: Staff and police raising concerns while the provider's own reports thin out
    level: moderate
    window_days: 120
    baseline_days: 240
    voices:
      when:
        - {type: whistleblowing}
        - {type: police_flag, kind: [incident_attended, concern_raised]}
    reports:
      when:
        - {type: statutory_notification}
        - {type: safeguarding_concern}
      prior: {per_capacity: 10, window_days: 365, min_history_days: 90, min_peers: 5, max_shape: 10}
    min_voices: 3
    voices_p: 0.01
    reports_p: 0.01
    max_reports_ratio: 0.5
    exit_p: 0.05
    min_history_days: 180
    max_shape: 30
"""
POLICY = small_policy(CLOSED_CULTURE)
NOTIFIED = {"category": "serious_injury", "linked_to_safeguarding": False}
REFERRAL = {"abuse_type": "neglect", "serious": False, "linked_death": False}
WHISTLE = {"topic": "care", "key_questions": []}
POLICE = {"kind": "concern_raised", "care_related": True}


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def spaced(kind: str, data: dict[str, Any], per_year: float, start: float, end: float, prefix: str) -> list[Event]:
    gap = 365.0 / per_year
    return [ev(kind, day(start + gap * (i + 0.5)), data, f"{prefix}-{i}") for i in range(int((end - start) / gap))]


def reports(until_quiet: float, end: float) -> list[Event]:
    """30 notifications and referrals a year, then 3 a year from `until_quiet`."""
    return (
        spaced("statutory_notification", NOTIFIED, 20, 0, until_quiet, "n")
        + spaced("safeguarding_concern", REFERRAL, 10, 0, until_quiet, "s")
        + spaced("statutory_notification", NOTIFIED, 3, until_quiet, end, "q")
    )


def voices(start: float, end: float, per_year: float) -> list[Event]:
    """One whistleblowing report a year throughout, and from `start` staff and police at this rate."""
    return (
        spaced("whistleblowing", WHISTLE, 1, 0, end, "w")
        + spaced("police_flag", POLICE, per_year, start, end, "p")
        + spaced("whistleblowing", WHISTLE, per_year, start, end, "x")
    )


def run(events: list[Event]) -> Any:
    state, outcomes = feed(sorted(events, key=lambda e: e.time), POLICY, HOME)
    return state, [o.change for o in outcomes if o.change is not None]


def test_voices_rising_while_reports_thin_out_is_moderate_explained_with_both() -> None:
    state, changes = run(reports(260, 440) + voices(300, 440, 24))
    assert state.current.level is Level.moderate
    up = changes[0]
    assert up.new_level == "moderate" and day(300) < up.decided_at <= day(440)
    (why,) = up.reasons
    assert why.rule_id == "closed_culture" and why.family == "closed_culture"
    assert "from staff and police against" in why.description and "its own reports were" in why.description
    assert {e.type for e in why.evidence} >= {"whistleblowing", "police_flag", "statutory_notification"}


def test_voices_rising_alone_or_reports_thinning_alone_is_not_a_closed_culture() -> None:
    loud = run(reports(440, 440) + voices(300, 440, 24))[0]
    quiet = run(reports(260, 440) + voices(440, 440, 24) + spaced("police_flag", POLICE, 2, 0, 440, "pp"))[0]
    assert loud.current.level is Level.none and quiet.current.level is Level.none


def test_the_series_have_their_own_tags_and_the_reports_their_peer_sums() -> None:
    c = compiled(POLICY)
    assert {"closed_culture:voices", "closed_culture:reports"} <= set(c.bits)
    assert c.peer_keys == ["closed_culture:reports"]


def test_a_growing_baseline_plans_no_tick_at_the_gap_after_the_first_event() -> None:
    # While the baseline still grows it starts at the first observation and loses no event;
    # its edge was worked out from the part grown so far, which planned a raised location
    # again at its clock plus the gap between its first event and the next (here ten
    # minutes), at every tick (found with the rises' same fault, profiling the evaluation).
    policy = small_policy(
        """
triggers:
  - id: quality_enforcement
    description: CQC enforcement related to quality of care
    level: major
    hold_days: 180
    when:
      - {type: cqc_enforcement, quality_related: true}
"""
        + CLOSED_CULTURE,
        version="closed-culture-ticks",
    )
    first = [
        ev("whistleblowing", day(0), WHISTLE, "w-0"),
        ev("whistleblowing", day(0) + timedelta(minutes=10), WHISTLE, "w-1"),
    ]
    enforcement = ev("cqc_enforcement", day(200), {"action": "warning_notice", "quality_related": True}, "enf")
    events = first + spaced("statutory_notification", NOTIFIED, 12, 0, 200, "n") + [enforcement]
    state, _ = feed(sorted(events, key=lambda e: e.time), policy, HOME)
    assert state.current.level is Level.major and state.clock == day(200)
    due = next_due(state, HOME, policy)
    # The next thing that can change: the minimum time at the level running out.
    assert due == day(214)
