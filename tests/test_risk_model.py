"""The pure risk model: one test per rule family, the policy's own examples of poor care,
hysteresis, order independence and idempotency; on the previous default policy
(default-2026.11.4), whose families these are (see tests/test_scoring_model.py)."""

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.directory import Location
from schemas.events import EventParser
from schemas.examples import example_event
from schemas.risk import Level
from services.scoring.model import LocationState, assess, tick
from services.scoring.rules.peer_stats import PeerStats
from tests.test_scoring_model import POLICY, level, rules, run

PARSER = EventParser()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
LOC = "1-101234567"
HOME = Location(
    location_id=LOC, provider_id="1-000111222", service_type="care_home", capacity=40, host_authority="E10000030"
)

MISSED = {"outcome": "missed", "time_critical": False}
SERIOUS = {"abuse_type": "neglect", "serious": True, "linked_death": False}


def ev(kind: str, at: datetime, data: dict[str, Any] | None = None, event_id: str | None = None) -> Any:
    return PARSER.parse_obj(
        example_event(kind, event_id=event_id or f"{kind}-{int(at.timestamp())}", location_id=LOC, time=at, data=data),
        now=NOW,
    )


def test_the_policy_examples_of_poor_care_do_not_raise_a_level_on_their_own() -> None:
    for kind, data in [
        ("missed_visit", MISSED),  # one missed visit
        ("complaint", {"category": "medication", "severity": "medium"}),  # one medication error
        ("ccg_flag", {"concern": "medication", "severity": "medium"}),
        ("complaint", {"category": "other", "severity": "low"}),  # poor food
        ("complaint", {"category": "staffing", "severity": "medium"}),  # one shift under-staffed
        ("health_use", {"kind": "ae_attendance", "injury_type": "fall"}),  # one A&E attendance
    ]:
        state, outcomes = run([ev(kind, T0, data)])
        assert level(state) is Level.none and outcomes[0].change is None, kind


def test_a_single_severe_event_sets_major_at_once_with_its_evidence_and_actions() -> None:
    _, [outcome] = run([ev("safeguarding_concern", T0, SERIOUS, "sg-1")], HOME)
    change = outcome.change
    assert change is not None and change.new_level == "major" and change.old_level == "none"
    assert change.reasons[0].rule_id == "serious_abuse_or_neglect"
    assert [(e.event_id, e.time) for e in change.reasons[0].evidence] == [("sg-1", T0)]
    assert change.actions[0].action == "Immediate suspension of new placements"
    assert change.policy_version == POLICY.version and change.decided_at == T0
    assert change.provider_id == "1-000111222" and change.change_id == f"{LOC}:{POLICY.version}:1"
    death = ev("statutory_notification", T0, {"category": "death", "linked_to_safeguarding": True})
    assert level(run([death])[0]) is Level.major


def test_pattern_repeated_missed_visits() -> None:
    two, _ = run([ev("missed_visit", T0 + timedelta(days=d), MISSED) for d in (0, 5)])
    assert level(two) is Level.none
    three, _ = run([ev("missed_visit", T0 + timedelta(days=d), MISSED) for d in (0, 5, 10)])
    assert level(three) is Level.minor and rules(three) == {"repeated_missed_visits"}
    spread, _ = run([ev("missed_visit", T0 + timedelta(days=d), MISSED) for d in (0, 30, 60)])
    assert level(spread) is Level.none  # not within 28 days


def test_accumulated_low_level_concerns_enter_minor_and_decay_away() -> None:
    high = {"finding_level": "high", "key_questions": ["safe"]}
    two, _ = run([ev("contract_monitoring", T0 + timedelta(days=d), high) for d in (0, 1)])
    assert level(two) is Level.none and 5.9 < two.current.score < 6  # just under the Minor entry of 6
    state, _ = run([ev("contract_monitoring", T0 + timedelta(days=d), high) for d in (0, 1, 2)])
    assert level(state) is Level.minor and "accumulated_concern" in rules(state)
    assert 8.5 < state.current.score < 9
    held = tick(state, None, T0 + timedelta(days=30), POLICY).state
    assert 4.2 < held.current.score < 6  # below the entry, above the exit (6 x 0.7)
    assert level(held) is Level.minor
    later = tick(state, None, T0 + timedelta(days=120), POLICY)
    assert level(later.state) is Level.none and later.change is not None
    assert later.change.direction == "de-escalation"


def test_triangulation_needs_independent_kinds_of_source() -> None:
    kinds = [
        ev("complaint", T0, {"category": "care", "severity": "medium"}),
        ev("ccg_flag", T0 + timedelta(days=1), {"concern": "clinical_quality", "severity": "low"}),
        ev("whistleblowing", T0 + timedelta(days=2), {"topic": "staffing", "key_questions": []}),
    ]
    state, _ = run(kinds)
    assert level(state) is Level.minor and "triangulated_concern" in rules(state)
    one_kind, _ = run(
        [ev("ccg_flag", T0 + timedelta(days=d), {"concern": "other", "severity": "low"}) for d in (0, 1, 2)]
    )
    assert "triangulated_concern" not in rules(one_kind) and level(one_kind) is Level.none


def test_ratings_inadequate_and_requires_improvement_twice() -> None:
    def rating(overall: str, published: str, at: datetime) -> Any:
        return ev("cqc_rating", at, {"overall": overall, "published": published, "key_questions": {}})

    assert level(run([rating("inadequate", "2026-01-01", T0)])[0]) is Level.moderate
    once = run([rating("requires_improvement", "2026-01-01", T0)])[0]
    assert level(once) is Level.none
    twice = run(
        [
            rating("requires_improvement", "2025-01-01", T0),
            rating("requires_improvement", "2026-01-01", T0 + timedelta(days=1)),
        ]
    )[0]
    assert level(twice) is Level.minor and "requires_improvement_repeatedly" in rules(twice)
    improved = run(
        [rating("requires_improvement", "2025-01-01", T0), rating("good", "2026-01-01", T0 + timedelta(days=1))]
    )[0]
    assert "requires_improvement_repeatedly" not in rules(improved)


def test_rise_against_the_locations_own_history() -> None:
    low = {"category": "care", "severity": "low"}
    history = [ev("complaint", T0 + timedelta(days=d), low) for d in range(0, 300, 60)]  # 5 in 300 days
    burst = [ev("complaint", T0 + timedelta(days=330 + d), low) for d in (0, 3, 6, 9, 12)]
    state, _ = run(history + burst)
    assert "complaints_rising" in rules(state)
    two_recent, _ = run(history + burst[:2])
    assert "complaints_rising" not in rules(two_recent)  # never on one or two complaints


def with_own(state: LocationState, others: list[float]) -> dict[tuple[str, str], PeerStats]:
    """Peer sums as the worker keeps them: the other locations plus this one's rate."""
    rule = "safeguarding_concerns_vs_peers"
    rates = [*others, state.peer_rates[rule][1]]
    return {(rule, "care_home"): PeerStats(len(rates), sum(rates), sum(r * r for r in rates))}


def test_peers_unusually_high_and_unusually_low() -> None:
    others = [1.0, 1.5, 2.0, 2.5, 3.0, 2.0]  # concerns per 10 beds at six peers
    minor = {"abuse_type": "psychological", "serious": False, "linked_death": False}
    many = [ev("safeguarding_concern", T0 + timedelta(days=d), minor) for d in range(0, 60, 3)]  # 20 in 40 beds
    state, _ = run(many, HOME)
    assert state.peer_rates["safeguarding_concerns_vs_peers"] == ("care_home", 5.0)
    high = tick(state, HOME, T0 + timedelta(days=60), POLICY, with_own(state, others)).state
    assert any("unusually high" in r.description for r in high.reasons())

    quiet = [ev("complaint", T0 + timedelta(days=d), {"category": "other", "severity": "low"}) for d in (0, 400)]
    silent, _ = run(quiet, HOME)
    low = tick(silent, HOME, T0 + timedelta(days=401), POLICY, with_own(silent, others)).state
    assert any("unusually low" in r.description for r in low.reasons())
    young, _ = run(quiet[:1], HOME)  # too little history to call a silence under-reporting
    not_yet = tick(young, HOME, T0 + timedelta(days=30), POLICY, with_own(young, others)).state
    assert "safeguarding_concerns_vs_peers" not in rules(not_yet)
    few = tick(state, HOME, T0 + timedelta(days=60), POLICY, with_own(state, others[:2])).state
    assert "safeguarding_concerns_vs_peers" not in rules(few)  # fewer than min_peers


def test_a_level_does_not_fall_before_the_minimum_time_and_says_so() -> None:
    state, _ = run([ev("missed_visit", T0 + timedelta(days=d), MISSED) for d in (0, 1, 2)])
    assert level(state) is Level.minor
    early = tick(state, None, T0 + timedelta(days=29, hours=12), POLICY).state  # window passed, 27 days at level
    assert level(early) is Level.none
    since = state.since
    assert since is not None
    # A trigger that expires soon after raising: held for min_days_at_level.
    trig, _ = run([ev("workforce", T0, {"manager_concerns": True})])
    assert level(trig) is Level.moderate
    held = tick(trig, None, T0 + timedelta(days=61), POLICY).state
    assert level(held) is Level.none
    flash, _ = run([ev("workforce", T0, {"manager_concerns": True})])
    still = tick(flash, None, T0 + timedelta(days=59), POLICY).state
    assert level(still) is Level.moderate  # trigger holds for hold_days (60)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=8, max_value=16), min_size=6, max_size=20))
def test_no_flapping_under_an_oscillating_input(gaps: list[int]) -> None:
    # Missed visits every 8 to 16 days keep the 28-day count oscillating around the
    # threshold: the level may rise once, then must not flap up and down.
    at = T0
    events = []
    for i, gap in enumerate(gaps):
        at += timedelta(days=gap)
        events.append(ev("missed_visit", at, MISSED, f"mv-{i}"))
    _, outcomes = run(events)
    changes = [o.change for o in outcomes if o.change is not None]
    ups = [c for c in changes if c.direction == "escalation"]
    downs = [c for c in changes if c.direction == "de-escalation"]
    assert len(changes) <= 2 * max(1, len(ups))
    for down in downs:
        # Every fall comes at least min_days_at_level after the rise before it.
        rise = max(u.decided_at for u in ups if u.decided_at < down.decided_at)
        assert (down.decided_at - rise).days >= POLICY.min_days_at_level


KIND_DATA = [
    ("missed_visit", MISSED),
    ("complaint", {"category": "medication", "severity": "high"}),
    ("safeguarding_concern", {"abuse_type": "neglect", "serious": False, "linked_death": False}),
    ("ccg_flag", {"concern": "pressure_ulcers", "severity": "medium"}),
    ("whistleblowing", {"topic": "staffing", "key_questions": []}),
    ("health_use", {"kind": "ae_attendance", "injury_type": "fall", "repeat_injury": True}),
]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(KIND_DATA) - 1), st.integers(0, 59)), min_size=2, max_size=8),
    st.randoms(use_true_random=False),
)
def test_arrival_order_within_the_tolerance_does_not_change_the_result(picks: list[tuple[int, int]], rng: Any) -> None:
    base = T0 + timedelta(days=30)
    history = [ev("missed_visit", T0 + timedelta(days=d), MISSED, f"h-{d}") for d in (0, 10, 20)]
    recent = [
        ev(KIND_DATA[k][0], base + timedelta(minutes=m), KIND_DATA[k][1], f"r-{i}") for i, (k, m) in enumerate(picks)
    ]
    shuffled = list(recent)
    rng.shuffle(shuffled)
    in_order, _ = run(history + sorted(recent, key=lambda e: e.time))
    any_order, _ = run(history + shuffled)
    assert level(in_order) == level(any_order)
    assert in_order.reasons() == any_order.reasons()
    assert in_order.current.score == any_order.current.score
    _, outcomes_again = run(history + shuffled)
    _, outcomes = run(history + shuffled)
    assert [o.change for o in outcomes] == [o.change for o in outcomes_again]  # deterministic


def test_idempotent_expired_and_late_events() -> None:
    first = ev("missed_visit", T0 + timedelta(days=500), MISSED, "mv-1")
    state, _ = run([first])
    again = assess(state, None, first, POLICY)
    assert again.status == "duplicate" and again.state == state and again.change is None
    expired = assess(state, None, ev("missed_visit", T0, MISSED, "old"), POLICY)
    assert expired.status == "expired" and expired.state == state
    late = assess(state, None, ev("missed_visit", T0 + timedelta(days=490), MISSED, "late"), POLICY)
    assert late.status == "late" and len(late.state.evidence) == 2
