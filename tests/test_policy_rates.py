"""Counts per capacity, against peers and by kinds of source, as the previous default
policy (default-2026.11.4, tests/data/policy/) configured them: the families are still
there for areas that want them; and every row and pattern of the source reachable with
events a real source sends in the current default (the risk model, no broker)."""

from datetime import timedelta

import pytest

from schemas.directory import Location, ServiceType
from schemas.risk import Level
from services.scoring.engine import compiled
from services.scoring.model import LocationState, assess, tick
from services.scoring.policy import DEFAULT_POLICY, load_policy, parse_policy
from services.scoring.rules.peer_stats import PeerStats
from tests.test_scoring_model import (
    HOME,
    LOC,
    POLICY,
    PREVIOUS_POLICY,
    SMALL,
    day,
    ev,
    level,
    reason,
    rules,
    run,
    stats,
)

MEDICATION_ERROR = {"category": "medication_error", "harm": "none"}
BIG_HOME = HOME.model_copy(update={"capacity": 90})
LOW_LEVEL = "low_level_concerns_disproportionate"


def errors(count: int, gap: float = 2) -> list:  # type: ignore[type-arg]
    return [ev("provider_incident", day(d * gap), MEDICATION_ERROR, f"inc-{d}") for d in range(count)]


@pytest.mark.parametrize(
    ("location", "below", "at"),
    [
        (None, 2, 3),  # no directory record yet: the minimum count
        (SMALL, 2, 3),  # 8 beds: 2.4 by rate, so the minimum of 3
        (HOME, 11, 12),  # 40 beds: 3 per 10 beds
        (BIG_HOME, 26, 27),
    ],
)
def test_a_series_of_medication_errors_from_the_providers_own_returns_is_per_capacity(
    location: Location | None, below: int, at: int
) -> None:
    quiet, _ = run(errors(below), location)
    assert "series_of_medication_errors" not in rules(quiet)
    series, _ = run(errors(at), location)
    assert level(series) is Level.minor and "series_of_medication_errors" in rules(series)
    fired = reason(series, "series_of_medication_errors")
    assert fired.measure == at and {e.type for e in fired.evidence} == {"provider_incident"}
    if location is not None and location.capacity > 10:
        assert f"the threshold for its size is {at}" in fired.description


def test_one_medication_error_is_poor_care_not_a_cause_for_concern() -> None:
    state, _ = run(errors(1), SMALL)
    assert level(state) is Level.none


def test_a_per_capacity_pattern_leaves_one_below_its_threshold_for_that_size() -> None:
    state, _ = run(errors(12, gap=5), HOME)  # 12 in 55 days, inside the 90-day window
    assert "series_of_medication_errors" in rules(state)
    # The first leaves the window at day 90: 11 remain, the exit threshold for 40 beds.
    still = tick(state, HOME, day(90.5), POLICY).state
    assert "series_of_medication_errors" in rules(still)
    gone = tick(still, HOME, day(95.5), POLICY).state
    assert "series_of_medication_errors" not in rules(gone)


def test_moderate_harm_pressure_ulcers_from_incident_returns_are_signs_of_neglect() -> None:
    ulcer = {"category": "pressure_ulcer", "harm": "moderate"}
    # An 8-bed home: the minimum count of five in 90 days binds.
    state, _ = run([ev("provider_incident", day(d), ulcer) for d in (0, 10, 20, 30)], SMALL)
    assert "signs_of_neglect" not in rules(state)
    state, _ = run([ev("provider_incident", day(d), ulcer) for d in (0, 10, 20, 30, 40)], SMALL)
    assert "signs_of_neglect" in rules(state) and level(state) is Level.moderate
    minor_harm = {"category": "pressure_ulcer", "harm": "low"}
    state, _ = run([ev("provider_incident", day(d), minor_harm) for d in (0, 10, 20, 30, 40)], SMALL)
    assert "signs_of_neglect" not in rules(state)


def test_missed_visits_are_counted_per_person_supported() -> None:
    agency = HOME.model_copy(update={"service_type": ServiceType.home_care, "capacity": 100})
    missed = {"outcome": "missed", "time_critical": False}
    # An agency of 100: NF's upper missed rate is ~69 in 28 days; 70 is "repeated".
    ordinary, _ = run([ev("missed_visit", day(d * 0.3), missed) for d in range(69)], agency)
    assert "repeated_missed_visits" not in rules(ordinary)
    repeated, _ = run([ev("missed_visit", day(d * 0.3), missed) for d in range(70)], agency)
    assert "repeated_missed_visits" in rules(repeated)


# --- the Minor row: low-level concerns from contract monitoring, the NHS, care reviews ---

REVIEW_LOW = {"finding_level": "low", "key_questions": ["effective"]}
REVIEW_NONE = {"finding_level": "none"}
PEERS = [1.0, 1.5, 2.0, 2.5, 3.0]  # low-level concerns per 10 beds in 180 days at five peers


def view(others: list[float], state: LocationState | None = None) -> dict[tuple[str, str], PeerStats]:
    """Peer sums as the worker keeps them: the others plus this location's last contribution."""
    rates = list(others)
    if state is not None and LOW_LEVEL in state.peer_rates:
        rates.append(state.peer_rates[LOW_LEVEL][1])
    return {(LOW_LEVEL, "care_home"): stats(rates)}


def judged(events: list, location: Location, others: list[float]) -> LocationState:  # type: ignore[type-arg]
    """Feed the events one by one with the peer sums kept up to date, then look an hour on."""
    state: LocationState | None = None
    for event in events:
        state = assess(state, location, event, POLICY, view(others, state)).state
    assert state is not None and state.clock is not None
    return tick(state, location, state.clock + timedelta(hours=1), POLICY, view(others, state)).state


def test_a_disproportionate_number_of_low_level_care_review_findings_is_minor() -> None:
    reviews = [ev("care_review", day(d), REVIEW_LOW) for d in range(0, 60, 10)]  # 6 in 8 beds: 7.5 per 10
    state, _ = judged(reviews, SMALL, PEERS), None
    assert state.peer_rates[LOW_LEVEL] == ("care_home", 7.5)
    assert LOW_LEVEL in rules(state) and level(state) is Level.minor
    fired = reason(state, LOW_LEVEL)
    assert "unusually high" in fired.description and fired.evidence_count == 6


def test_the_three_sources_of_the_minor_row_all_count_and_high_findings_do_not() -> None:
    mixed = [
        ev("care_review", day(0), REVIEW_LOW),
        ev("contract_monitoring", day(5), {"finding_level": "medium", "key_questions": ["safe"]}),
        ev("ccg_flag", day(9), {"concern": "clinical_quality", "severity": "low"}),
        ev("care_review", day(12), {"finding_level": "high", "key_questions": ["safe"]}),
        ev("care_review", day(14), REVIEW_NONE),
    ]
    state, _ = judged(mixed, SMALL, PEERS), None
    assert state.peer_rates[LOW_LEVEL] == ("care_home", 3.75)  # 3 in 8 beds


def test_one_or_two_findings_at_a_small_service_are_not_a_disproportionate_number() -> None:
    tiny = SMALL.model_copy(update={"capacity": 2})
    state, _ = judged([ev("care_review", day(d), REVIEW_LOW) for d in (0, 5)], tiny, PEERS), None
    assert state.peer_rates[LOW_LEVEL] == ("care_home", 10.0)  # far above peers, but only two
    assert LOW_LEVEL not in rules(state)


def test_few_low_level_concerns_are_never_flagged_as_unusually_low() -> None:
    state, _ = (
        judged(
            [ev("care_review", day(0), REVIEW_NONE), ev("care_review", day(400), REVIEW_NONE)],
            SMALL,
            [5.0, 6.0, 7.0, 8.0, 9.0],
        ),
        None,
    )
    assert LOW_LEVEL not in rules(state)


def test_care_review_findings_add_to_the_accumulated_score() -> None:
    state, _ = run([ev("care_review", day(0), {"finding_level": "high", "key_questions": ["safe"]})])
    assert state.current.score == pytest.approx(3.0)


# --- triangulation per capacity -----------------------------------------------------------


def concerns_from_three_kinds(per_kind: int) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(per_kind):
        out.append(ev("complaint", day(i), {"category": "care", "severity": "medium"}))
        out.append(ev("whistleblowing", day(i) + timedelta(hours=1), {"topic": "care", "key_questions": []}))
        out.append(ev("care_review", day(i) + timedelta(hours=2), {"finding_level": "medium", "key_questions": []}))
    return out


def test_a_kind_of_source_counts_in_triangulation_once_it_has_a_concern_per_20_beds() -> None:
    small, _ = run(concerns_from_three_kinds(1), SMALL)
    assert "triangulated_concern" in rules(small)
    big_four_each, _ = run(concerns_from_three_kinds(4), BIG_HOME)
    assert "triangulated_concern" not in rules(big_four_each)
    big_five_each, _ = run(concerns_from_three_kinds(5), BIG_HOME)
    assert "triangulated_concern" in rules(big_five_each)
    assert "each with at least 5 concerns" in reason(big_five_each, "triangulated_concern").description


# --- reachability: every row and pattern of the source, from real events -----------------


def test_every_default_rule_is_reachable_from_events_a_real_source_sends() -> None:
    # Each rule family's conditions name event types in the contract, with values checked
    # at load; here: the two signals that were missing reach their rules.
    current = load_policy(DEFAULT_POLICY)
    medication = next(r for r in current.rises if r.id == "medication_errors_rising")
    assert "provider_incident" in {c.type for c in medication.when}
    low_level = next(r for r in current.rises if r.id == LOW_LEVEL)
    assert "care_review" in {c.type for c in low_level.when}


def test_a_requirement_notice_is_not_a_major_trigger_but_counts_as_the_regulators_concern() -> None:
    notice = {"action": "requirement_notice", "quality_related": True}
    state, _ = run([ev("cqc_enforcement", day(0), notice)], SMALL)
    assert level(state) is Level.none
    bit = compiled(POLICY).bits["quality_enforcement"]
    assert state.evidence[0].concern and not state.evidence[0].tags >> bit & 1
    warning = {"action": "warning_notice", "quality_related": True}
    state, _ = run([ev("cqc_enforcement", day(0), warning)], SMALL)
    assert level(state) is Level.major


def test_a_condition_on_key_question_tags_matches_any_listed_tag() -> None:
    text = PREVIOUS_POLICY.read_text().replace(
        "      - {type: workforce, manager_concerns: true}\n",
        "      - {type: workforce, manager_concerns: true}\n      - {type: care_review, key_questions: [well_led]}\n",
    )
    policy = parse_policy(text, "tags.yaml")
    review = ev("care_review", day(0), {"finding_level": "medium", "key_questions": ["safe", "well_led"]})
    outcome = assess(None, SMALL, review, policy)
    assert level(outcome.state) is Level.moderate and "concerns_about_manager" in rules(outcome.state)
    assert outcome.state.location_id == LOC
