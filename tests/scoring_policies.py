"""Small policies for the rule-family tests: the default policy's header and levels with
only the sections a test is about, so that each family is tested on its own; and the
worker's peer sums for a location among fixed others."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from schemas.directory import Location
from schemas.events import Event
from services.scoring.model import LocationState, Outcome, assess, next_due, tick
from services.scoring.policy import DEFAULT_POLICY, Policy, parse_policy
from services.scoring.rules.peer_stats import PeerStats, PeerUpdate

_HEADER = DEFAULT_POLICY.read_text().split("\n# Single events that set a level at once")[0]


def policy_text(sections: str, version: str = "family-test") -> str:
    """The default's header and levels (retention 400 days, tolerance 60 minutes, 14 days
    at a level) with these YAML sections."""
    head = "\n".join(f'version: "{version}"' if line.startswith("version:") else line for line in _HEADER.splitlines())
    return f"{head}\n{sections}"


def small_policy(sections: str, version: str = "family-test") -> Policy:
    return parse_policy(policy_text(sections, version), "family-test.yaml")


def stats(rates: Sequence[float]) -> PeerStats:
    return PeerStats(len(rates), sum(rates), sum(r * r for r in rates))


class Peers:
    """The worker's peer sums for one location among fixed others of its type: each key
    starts with the others' rates, and the location's own updates are applied."""

    def __init__(self, others: Mapping[tuple[str, str], Sequence[float]]) -> None:
        self.view: dict[tuple[str, str], PeerStats] = {key: stats(rates) for key, rates in others.items()}

    def apply(self, updates: Iterable[PeerUpdate]) -> None:
        for update in updates:
            for sign, entry in ((-1, update.old), (1, update.new)):
                if entry is None:
                    continue
                key = (update.rule_id, entry[0])
                old = self.view.get(key, PeerStats())
                self.view[key] = PeerStats(
                    old.n + sign, old.total + sign * entry[1], old.total_sq + sign * entry[1] * entry[1]
                )


def feed(
    events: Iterable[Event],
    policy: Policy,
    location: Location | None,
    peers: Peers | None = None,
    state: LocationState | None = None,
) -> tuple[LocationState, list[Outcome]]:
    """Events in the order given, the peer sums kept up to date as the worker keeps them."""
    outcomes = []
    for event in events:
        outcome = assess(state, location, event, policy, peers.view if peers is not None else None)
        if peers is not None:
            peers.apply(outcome.peer_updates)
        state = outcome.state
        outcomes.append(outcome)
    assert state is not None
    return state, outcomes


def tick_to(
    state: LocationState, policy: Policy, location: Location | None, until: datetime, peers: Peers | None = None
) -> tuple[LocationState, list[Outcome]]:
    """Let time pass as the worker does: tick at every due time up to `until`."""
    outcomes = []
    while True:
        due = next_due(state, location, policy, peers.view if peers is not None else None)
        if due is None or due > until:
            break
        outcome = tick(state, location, due, policy, peers.view if peers is not None else None)
        if peers is not None:
            peers.apply(outcome.peer_updates)
        state = outcome.state
        outcomes.append(outcome)
    return state, outcomes
