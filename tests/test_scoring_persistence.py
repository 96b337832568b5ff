"""Persistence (services/scoring/rules/persistence.py): a Minor pattern that persists or
grows escalates to Moderate after `persist_days`, explained with the rule, how long and
how it moved; one that fades lets the level fall; one that is falling does not escalate;
and time alone (a tick at the sample point `next_due` names) escalates it."""

from datetime import datetime, timedelta

from schemas.risk import Level
from services.scoring.model import LocationState, next_due
from services.scoring.policy import Policy
from services.scoring.state_codec import decode_state, encode_state
from services.scoring.timeline import US_PER_DAY, to_us
from tests.scoring_policies import feed, small_policy, tick_to
from tests.test_scoring_model import AGENCY, LOW_COMPLAINT, MISSED, ev

START = datetime.fromisoformat("2026-01-05T09:00:00+00:00")

PATTERN = """
patterns:
  - id: repeated_missed_visits
    description: Repeated missed visits by a home-care agency
    level: minor
    window_days: 28
    enter_count: 3
    when:
      - {type: missed_visit, outcome: missed}
"""


def persisting(trend: str = "not_falling") -> Policy:
    return small_policy(
        PATTERN
        + f"""
persistence:
  - id: missed_visits_persisting
    description: Repeated missed visits that persist
    level: moderate
    of: repeated_missed_visits
    persist_days: 60
    sample_days: 7
    trend: {trend}
""",
        version=f"persist-{trend}",
    )


POLICY = persisting()


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def missed(days: list[float]) -> list:  # type: ignore[type-arg]
    return [ev("missed_visit", day(d), MISSED, f"mv-{i}") for i, d in enumerate(days)]


def level_on(policy: Policy, days: list[float], on: float) -> Level:
    state, _ = feed([e for e in missed(days) if e.time <= day(on)], policy, AGENCY)
    state, _ = tick_to(state, policy, AGENCY, day(on))
    return state.current.level


def test_a_pattern_that_persists_escalates_to_moderate_explained_with_its_rule_days_and_trend() -> None:
    every_five = [5.0 * i for i in range(31)]  # days 0..150: 5-6 in every 28 days
    state, outcomes = feed(missed(every_five), POLICY, AGENCY)
    escalations = [o.change for o in outcomes if o.change is not None and o.change.new_level == "moderate"]
    assert len(escalations) == 1
    change = escalations[0]
    # Minor from the third visit (day 10); it holds at its leaving threshold (two in 28
    # days) from day 5, so Moderate once every weekly check of the last 60 days found it:
    # not before day 65, and by the first check after day 72.
    assert day(65) <= change.decided_at <= day(72)
    assert level_on(POLICY, every_five, 60) is Level.minor
    why = next(r for r in change.reasons if r.rule_id == "missed_visits_persisting")
    assert why.family == "persistence" and why.level == "moderate"
    # Compared with the period's oldest check (day 5: two visits in 28 days).
    assert why.description == "Repeated missed visits that persist: for over 60 days and rising (2 then, 6 now)"
    assert why.evidence_count >= 10 and {e.type for e in why.evidence} == {"missed_visit"}
    assert {r.rule_id for r in change.reasons} >= {"repeated_missed_visits", "missed_visits_persisting"}
    assert state.current.level is Level.moderate


def test_a_pattern_that_fades_lets_the_level_fall() -> None:
    state, _ = feed(missed([5.0 * i for i in range(25)]), POLICY, AGENCY)  # to day 120
    assert state.current.level is Level.moderate
    state, outcomes = tick_to(state, POLICY, AGENCY, day(200))
    falls = [o.change for o in outcomes if o.change is not None]
    assert [c.new_level for c in falls] == ["none"]
    # The last visit on day 120 leaves the 28-day window on day 148; the count fell below
    # the leaving threshold (2) when the third-last left (day 138).
    assert day(138) <= falls[0].decided_at <= day(149)
    assert state.current.level is Level.none


def test_a_falling_pattern_does_not_escalate_unless_the_trend_is_ignored() -> None:
    # Twelve missed visits in the first two days, then one every nine days (3 in 28
    # days): it holds at every weekly check, but until the burst is older than the
    # 60-day period it is lower now (3) than at the period's start (12).
    days = [i / 6 for i in range(12)] + [9.0 * i for i in range(1, 25)]
    assert level_on(POLICY, days, 80) is Level.minor
    assert level_on(persisting("any"), days, 80) is Level.moderate
    # Once it has held at its lower rate for the whole period, it persists.
    assert level_on(POLICY, days, 100) is Level.moderate


def test_time_alone_escalates_at_the_sample_point_next_due_names() -> None:
    state, _ = feed(missed([5.0 * i for i in range(13)]), POLICY, AGENCY)  # to day 60
    assert state.current.level is Level.minor
    due = next_due(state, AGENCY, POLICY)
    assert due is not None and day(60) < due <= day(67)
    state, outcomes = tick_to(state, POLICY, AGENCY, day(82))
    up = [o.change for o in outcomes if o.change is not None and o.change.new_level == "moderate"]
    # No event after day 60: a tick escalated it, at a sample point (fixed in time,
    # multiples of 7 days since the epoch) or when one left the 60-day period.
    assert len(up) == 1
    at, week = to_us(up[0].decided_at), 7 * US_PER_DAY
    assert at % week == 0 or (at - 1 - 60 * US_PER_DAY) % week == 0


def test_the_same_events_give_the_same_escalation_whether_the_state_is_stored_or_not() -> None:
    events = missed([5.0 * i for i in range(31)])
    whole, outcomes = feed(events, POLICY, AGENCY)
    state: LocationState | None = None
    stored = []
    for event in events:
        state, out = feed([event], POLICY, AGENCY, state=state)
        stored += out
        state = decode_state(encode_state(state), POLICY)
    assert [o.change for o in stored] == [o.change for o in outcomes]
    assert state is not None and state.reasons() == whole.reasons()


def test_the_accumulated_score_persisting_escalates() -> None:
    policy = small_policy(
        """
accumulation:
  description: An accumulation of low-level concerns
  half_life_days: 45
  exit_ratio: 0.7
  enter: {minor: 4}
  weights:
    - {weight: 1, when: [{type: complaint, severity: low}]}
persistence:
  - id: accumulated_concern_persisting
    description: Low-level concerns accumulating for months
    level: moderate
    of: accumulated_concern
    persist_days: 60
"""
    )
    complaints = [ev("complaint", day(4.0 * i), LOW_COMPLAINT, f"c-{i}") for i in range(30)]
    _state, outcomes = feed(complaints, policy, AGENCY)
    up = [o.change for o in outcomes if o.change is not None and o.change.new_level == "moderate"]
    assert len(up) == 1
    why = next(r for r in up[0].reasons if r.rule_id == "accumulated_concern_persisting")
    assert "for over 60 days and rising" in why.description
    assert {e.type for e in why.evidence} == {"complaint"}
