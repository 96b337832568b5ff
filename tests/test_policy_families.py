"""The newer families' configuration (services/scoring/policy_families.py and the fields
added to rises, peers, triggers and ratings) is checked when the policy loads: a mistake
is refused naming the file, the line and the problem, never left to silently disable a
rule."""

import pytest

from services.scoring.policy import PolicyError, parse_policy
from tests.scoring_policies import policy_text

ORIGIN = "area.yaml"
PATTERN = """
patterns:
  - id: repeated_missed_visits
    description: Repeated missed visits
    level: minor
    window_days: 28
    enter_count: 3
    when:
      - {type: missed_visit, outcome: missed}
"""


def persistence(of: str = "repeated_missed_visits", level: str = "moderate", days: float = 90) -> str:
    return f"""
persistence:
  - id: missed_visits_persisting
    description: Repeated missed visits that persist
    level: {level}  # what it escalates to
    of: {of}
    persist_days: {days}
"""


def refused(sections: str, needle: str) -> tuple[str, int]:
    """The error message and the 1-based line of the first line containing `needle`."""
    text = policy_text(sections)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, ORIGIN)
    line = next(i + 1 for i, row in enumerate(text.splitlines()) if needle in row)
    return str(info.value), line


def test_persistence_of_a_rule_that_does_not_exist_names_its_line() -> None:
    message, line = refused(PATTERN + persistence(of="repeated_misssed_visits"), "of: repeated_misssed")
    assert f"{ORIGIN}:{line}:" in message and "is not a pattern, rise, peer rule or the accumulation" in message


def test_persistence_must_escalate_above_the_rule_it_judges() -> None:
    message, line = refused(PATTERN + persistence(level="minor"), "what it escalates to")
    assert (
        f"{ORIGIN}:{line}:" in message
        and "level must be above the level of 'repeated_missed_visits' (minor)" in message
    )


def test_a_period_the_kept_evidence_cannot_cover_is_refused() -> None:
    message, line = refused(PATTERN + persistence(days=380), "persist_days: 380")
    assert f"{ORIGIN}:{line}:" in message and "must fit in retention_days less a week (393)" in message


def test_fewer_than_two_samples_in_the_period_are_refused() -> None:
    message, line = refused(PATTERN + persistence(days=10), "id: missed_visits_persisting")
    assert f"{ORIGIN}:{line}:" in message and "persist_days must be at least two sample_days" in message


def test_corroboration_without_kinds_of_source_is_refused_at_the_trigger() -> None:
    trigger = """
triggers:
  - id: concerns_about_manager
    description: Concerns about the manager
    level: moderate
    hold_days: 60
    when:
      - {type: workforce, manager_concerns: true}
    corroborate:
      within_days: 30
      by:
        - {type: whistleblowing}
"""
    message, line = refused(trigger, "corroborate:")
    assert f"{ORIGIN}:{line}:" in message and "corroborate needs the triangulation's source_kinds" in message


def test_a_fall_judged_with_a_known_rate_is_refused() -> None:
    rise = """
rises:
  - id: reports_falling
    description: Fewer reports than its history predicts
    level: minor
    direction: down
    when:
      - {type: statutory_notification}
    recent_days: 90
    baseline_days: 270
    min_recent_count: 6
    enter_p: 0.001
    exit_p: 0.05
    min_history_days: 180
"""
    message, _ = refused(rise, "id: reports_falling")
    assert "a fall is judged with the negative_binomial tail or a prior" in message


def test_a_closed_culture_rule_whose_exit_is_stricter_than_its_entry_is_refused() -> None:
    rule = """
closed_culture:
  - id: closed_culture
    description: Staff and police speaking up while the provider's reports thin out
    level: moderate
    window_days: 120
    baseline_days: 240
    voices: {when: [{type: whistleblowing}]}
    reports: {when: [{type: statutory_notification}]}
    min_voices: 3
    voices_p: 0.01
    reports_p: 0.01
    max_reports_ratio: 0.5
    exit_p: 0.005
    min_history_days: 180
"""
    message, line = refused(rule, "id: closed_culture")
    assert f"{ORIGIN}:{line}:" in message and "exit_p must be at least voices_p and reports_p" in message


def test_an_unknown_field_in_a_peer_prior_names_its_line() -> None:
    rise = """
rises:
  - id: complaints_rising
    description: An increase in complaints
    level: minor
    when:
      - {type: complaint}
    recent_days: 60
    baseline_days: 300
    min_recent_count: 4
    enter_p: 0.001
    exit_p: 0.05
    min_history_days: 60
    tail: negative_binomial
    prior:
      per_capacity: 10
      min_peer: 5
"""
    message, line = refused(rise, "min_peer: 5")
    assert f"{ORIGIN}:{line}:" in message and "Extra inputs are not permitted" in message
