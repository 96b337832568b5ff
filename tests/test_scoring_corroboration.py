"""Triggers that need corroboration (services/scoring/rules/triggers.py, `corroborate`): a
single flag sets its level only with another piece of information from another kind of
source within `within_days` of it, before or after; the hold runs from the later of the
two. And repeated Requires-improvement ratings held for a while, not for years
(services/scoring/rules/ratings.py, `repeat_ri_hold_days`)."""

from datetime import UTC, datetime, timedelta

from schemas.risk import Level
from tests.scoring_policies import feed, small_policy, tick_to
from tests.test_scoring_model import HOME, ev, rating

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = small_policy(
    """
triggers:
  - id: concerns_about_manager
    description: Information linking concerns about the manager or responsible person
    level: moderate
    hold_days: 60
    when:
      - {type: workforce, manager_concerns: true}
    corroborate:
      within_days: 30
      by:
        - {type: whistleblowing}
        - {type: contract_monitoring, finding_level: [medium, high]}
triangulation:
  description: Concerns from several independent kinds of source
  window_days: 90
  source_kinds:
    workforce: commissioner
    contract_monitoring: commissioner
    whistleblowing: staff
  concerns:
    - {type: whistleblowing}
  steps:
    - {min_kinds: 3, level: minor}
"""
)
FLAG = {"manager_concerns": True}
WHISTLE = {"topic": "management", "key_questions": ["well_led"]}
FINDING = {"finding_level": "medium", "key_questions": ["well_led"]}


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def test_a_single_flag_alone_sets_nothing() -> None:
    state, outcomes = feed([ev("workforce", day(0), FLAG, "flag")], POLICY, HOME)
    assert state.current.level is Level.none and not any(o.change for o in outcomes)


def test_a_flag_corroborated_after_it_sets_moderate_from_then_for_the_hold() -> None:
    events = [ev("workforce", day(0), FLAG, "flag"), ev("whistleblowing", day(12), WHISTLE, "wb")]
    state, outcomes = feed(events, POLICY, HOME)
    (up,) = [o.change for o in outcomes if o.change is not None]
    assert up.new_level == "moderate" and up.decided_at == day(12)
    (why,) = up.reasons
    assert why.rule_id == "concerns_about_manager"
    assert "corroborated by 1 from another kind of source within 30 days" in why.description
    assert "whistleblowing 12 days after" in why.description
    assert [e.event_id for e in why.evidence] == ["flag", "wb"]
    # The hold runs from the corroboration: 60 days from day 12.
    state, outcomes = tick_to(state, POLICY, HOME, day(100))
    (down,) = [o.change for o in outcomes if o.change is not None]
    assert down.new_level == "none" and down.decided_at == day(72)


def test_a_flag_corroborated_before_it_sets_moderate_at_once() -> None:
    events = [ev("whistleblowing", day(0), WHISTLE, "wb"), ev("workforce", day(20), FLAG, "flag")]
    _state, outcomes = feed(events, POLICY, HOME)
    assert [o.change.decided_at for o in outcomes if o.change is not None] == [day(20)]


def test_information_from_the_flags_own_kind_of_source_or_too_late_does_not_corroborate() -> None:
    same_kind = [ev("workforce", day(0), FLAG, "flag"), ev("contract_monitoring", day(5), FINDING, "cm")]
    too_late = [ev("workforce", day(0), FLAG, "flag"), ev("whistleblowing", day(31), WHISTLE, "wb")]
    for events in (same_kind, too_late):
        state, _ = feed(events, POLICY, HOME)
        assert state.current.level is Level.none


RATINGS = """
ratings:
  inadequate_level: moderate
  repeat_ri_count: 2
  repeat_ri_level: minor
  repeat_ri_hold_days: 90
"""


def test_repeated_requires_improvement_is_minor_for_the_hold_after_the_latest_rating() -> None:
    policy = small_policy(RATINGS)
    events = [
        rating("requires_improvement", "2025-06-01", day(-200), "r1"),
        rating("requires_improvement", day(0).date().isoformat(), day(0), "r2"),
    ]
    state, outcomes = feed(events, policy, HOME)
    assert state.current.level is Level.minor
    state, outcomes = tick_to(state, policy, HOME, day(200))
    (down,) = [o.change for o in outcomes if o.change is not None]
    assert down.new_level == "none" and down.decided_at == day(90)
    # Without the hold it stands until a newer rating.
    lasting = small_policy(RATINGS.replace("  repeat_ri_hold_days: 90\n", ""), version="ratings-stand")
    standing, _ = feed(events, lasting, HOME)
    standing, _ = tick_to(standing, lasting, HOME, day(200))
    assert standing.current.level is Level.minor
