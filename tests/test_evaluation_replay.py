"""The pure replay: the same changes as the model called directly, deterministic, and
time signals that let quiet locations fall."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.directory import Location
from schemas.events import EventParser
from schemas.examples import example_event
from schemas.risk import Level
from services.evaluation.changes import Change, from_level_change
from services.evaluation.replay import replay
from services.evaluation.scenarios import Scenario, run_scenario
from services.scoring.model import LocationState, assess
from services.scoring.policy import Policy, parse_policy
from services.scoring.routing import partition_of

AGENCY = "1-101234567"  # partition 1
HOME = "1-101234563"  # partition 0
T0 = datetime(2025, 3, 3, 8, tzinfo=UTC)


# A policy of its own, so that calibrating the default does not move these tests. No peer
# rules: they compare a location with all others, whose state depends on how the worker's
# partitions interleave, and changes are compared here one for one.
POLICY = """
version: test-replay
retention_days: 400
out_of_order_tolerance_minutes: 60
min_days_at_level: 14
levels:
  major: {meaning: Unsafe., actions: [{action: Act, lead: Safeguarding}]}
  moderate: {meaning: At risk., actions: [{action: Act, lead: Safeguarding}]}
  minor: {meaning: Safe., actions: [{action: Act, lead: Contracts}]}
triggers:
  - id: serious_abuse_or_neglect
    description: A concern related to serious abuse or neglect
    level: major
    hold_days: 90
    when: [{type: safeguarding_concern, serious: true}]
patterns:
  - id: repeated_missed_time_critical_visits
    description: Repeated missed time-critical visits
    level: moderate
    window_days: 28
    enter_count: 3
    when: [{type: missed_visit, outcome: missed, time_critical: true}]
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(POLICY)


def locations() -> dict[str, Location]:
    common = {"provider_id": "1-000111222", "host_authority": "E10000030"}
    return {
        AGENCY: Location(location_id=AGENCY, service_type="home_care", capacity=60, **common),  # type: ignore[arg-type]
        HOME: Location(location_id=HOME, service_type="care_home", capacity=40, **common),  # type: ignore[arg-type]
    }


def missed(n: int, when: datetime) -> dict[str, Any]:
    data = {"outcome": "missed", "time_critical": True}
    return example_event("missed_visit", event_id=f"mv-{n}", location_id=AGENCY, time=when, data=data)


def serious(n: int, when: datetime) -> dict[str, Any]:
    data = {"abuse_type": "neglect", "serious": True, "linked_death": False}
    return example_event("safeguarding_concern", event_id=f"sg-{n}", location_id=HOME, time=when, data=data)


def complaint(n: int, when: datetime, location: str = HOME) -> dict[str, Any]:
    return example_event("complaint", event_id=f"c-{n}", location_id=location, time=when)


def tiny_stream() -> list[dict[str, Any]]:
    assert partition_of(AGENCY) != partition_of(HOME)
    return [
        missed(1, T0),
        missed(2, T0 + timedelta(days=2)),
        serious(1, T0 + timedelta(days=3)),
        missed(3, T0 + timedelta(days=4)),  # three time-critical misses in 28 days
        missed(3, T0 + timedelta(days=4)),  # resent
        missed(4, T0 + timedelta(days=1)),  # late, out of order
        complaint(1, T0 - timedelta(days=500)),  # older than the retention: expired
        complaint(2, T0 + timedelta(days=60), AGENCY),
        complaint(3, T0 + timedelta(days=200)),
    ]


def direct(events: list[dict[str, Any]], policy: Policy) -> list[Change]:
    """The model called by hand, as the worker would with no ticks."""
    parser = EventParser(future_tolerance=timedelta(days=3650))
    states: dict[str, LocationState] = {}
    clocks: dict[int, datetime] = {}
    changes = []
    for raw in events:
        event = parser.parse_obj(raw)
        partition = partition_of(event.subject)
        outcome = assess(
            states.get(event.subject), locations()[event.subject], event, policy, stream_clock=clocks.get(partition)
        )
        if outcome.status in ("applied", "late"):
            states[event.subject] = outcome.state
            if outcome.change is not None:
                changes.append(from_level_change(outcome.change))
        if outcome.state.clock is not None:
            clocks[partition] = max(clocks.get(partition, outcome.state.clock), outcome.state.clock)
    return changes


def test_replay_gives_the_changes_of_the_model_called_directly(policy: Policy) -> None:
    events = tiny_stream()
    result = replay(locations(), events, policy, ticks=False, signal_hours=None, organisations=False)
    expected = direct(events, policy)
    assert result.changes == expected
    assert [(c.subject, c.new) for c in expected][:2] == [(HOME, Level.major), (AGENCY, Level.moderate)]
    assert result.statuses == {"applied": 6, "late": 1, "duplicate": 1, "expired": 1}


def test_time_signals_let_a_quiet_location_fall(policy: Policy) -> None:
    # The agency goes quiet after its misses; only the home, on another partition, sends on.
    events = [missed(1, T0), missed(2, T0 + timedelta(days=1)), missed(3, T0 + timedelta(days=2))]
    events += [complaint(10 + d, T0 + timedelta(days=d)) for d in range(3, 80, 7)]
    quiet = replay(locations(), events, policy, signal_hours=None, organisations=False)
    signalled = replay(locations(), events, policy, signal_hours=1.0, organisations=False)
    agency = [(c.new, c.time) for c in quiet.changes if c.subject == AGENCY]
    assert [level for level, _ in agency] == [Level.moderate]  # no event on its partition: held
    fallen = [(c.new, c.time) for c in signalled.changes if c.subject == AGENCY]
    assert [level for level, _ in fallen] == [Level.moderate, Level.none]
    # Below the exit count once its second miss is 28 days old (day 29): planned for then,
    # and ticked at that time once the emulated clock (the stream's event time) passes it,
    # with the complaint of day 31.
    assert fallen[1][1] == T0 + timedelta(days=29)
    assert signalled.signals > 0 and signalled.ticks > 0


def test_a_scenario_replays_the_same_twice_and_split_by_partition(policy: Policy) -> None:
    scenario = Scenario("test", 7, 25, 45)
    one = run_scenario(scenario, policy)
    again = run_scenario(scenario, policy)
    assert one.policy == again.policy and one.observations == again.observations
    assert any(c.new >= Level.moderate for c in one.policy)
    split = run_scenario(scenario, policy, workers=2)

    def by_location(changes: list[Change]) -> list[Change]:
        return sorted((c for c in changes if c.scope == "location"), key=lambda c: (c.subject, c.sequence))

    # Without peer rules, splitting by partition changes nothing for any location.
    assert by_location(split.policy) == by_location(one.policy)
    assert split.events == one.events
    # Each process observes its own locations; together, every event once.
    rows = sorted(zip(one.observations.location, one.observations.time, one.observations.signal, strict=True))
    assert (
        sorted(zip(split.observations.location, split.observations.time, split.observations.signal, strict=True))
        == rows
    )
    assert split.observations.arrivals == one.observations.arrivals
