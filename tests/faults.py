"""What the fault tests share: a seeded world of locations and events, the oracle that
recomputes from the input alone the level changes and the alert deliveries the pipeline
must produce, audits that count what was lost or duplicated, and the tallies `make soak`
prints. The load and the processes under test are in `tests/fault_drivers.py`.

The same tests run short in `make test` and long under `make soak`, which sets
CARESIGNAL_FAULT_SOAK=1 (`tests/soak.py`).

The oracle is `services.evaluation.replay.Replay`: the scoring model run purely over the
events in the order they were sent. The scorer under test uses a policy without peer
rules (`tests.test_evaluation_pipeline.PIPELINE_POLICY`: a location's changes then
depend on its partition's order only, which the sender keeps) and sends no wall-clock
time signals, so its results are a function of the input.
"""

import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from schemas.directory import Location
from schemas.examples import example_event
from schemas.risk import LevelChange
from services.evaluation.replay import Replay
from services.scoring.policy import Policy, parse_policy
from tests.alert_peers import AUTHORITIES
from tests.conftest import KEYS
from tests.receivers import WebhookReceiver
from tests.test_evaluation_pipeline import PIPELINE_POLICY

SOAK_ENV = "CARESIGNAL_FAULT_SOAK"
SOURCE = KEYS["all"][1]
INGEST_HEADERS = {"Authorization": f"Bearer {KEYS['all'][0]}"}
# Hosts and placers without contact points: routed to, but nobody to deliver to.
NO_CONTACTS = ("E06000001", "E06000002")


@dataclass(frozen=True)
class Scale:
    """How hard each fault is pushed: short in `make test`, long in `make soak`."""

    name: str
    scorer_kills: int
    # Kills of a scorer worker while its group rebalances, a third worker joining or leaving.
    rebalance_kills: int
    alerts_kills: int
    broker_outages: int
    outage_s: float
    receiver_down_s: float
    retry_window_s: float
    locations: int
    days: int


SHORT = Scale(
    "short",
    scorer_kills=3,
    rebalance_kills=2,
    alerts_kills=3,
    broker_outages=1,
    outage_s=8,
    receiver_down_s=10,
    retry_window_s=20,
    locations=60,
    days=200,
)
LONG = Scale(
    "soak",
    scorer_kills=20,
    rebalance_kills=8,
    alerts_kills=20,
    broker_outages=3,
    outage_s=20,
    receiver_down_s=180,
    retry_window_s=240,
    locations=300,
    days=300,
)


def scale() -> Scale:
    return LONG if os.environ.get(SOAK_ENV) == "1" else SHORT


# --- the world ---------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Locations (one provider each: no organisation roll-up, whose order would be the
    broker's), active placements, and events in time order."""

    locations: dict[str, Location]
    placements: list[tuple[str, str]]  # (authority, location_id)
    events: list[dict[str, Any]]

    def placing(self, location_id: str) -> set[str]:
        return {a for a, loc in self.placements if loc == location_id}


# (short type, data, relative frequency): enough missed time-critical visits and
# complaints for Minor and Moderate, rare serious concerns for Major, and quiet spells
# long enough for levels to fall again.
EVENT_MIX: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("complaint", {"category": "medication", "severity": "medium", "raised_by": "family"}, 5),
    ("missed_visit", {"outcome": "missed", "time_critical": True}, 5),
    ("missed_visit", {"outcome": "missed", "time_critical": False}, 2),
    ("safeguarding_concern", {"abuse_type": "neglect", "serious": True, "linked_death": False}, 1),
    ("safeguarding_concern", {"abuse_type": "neglect", "serious": False, "linked_death": False}, 2),
)


def make_world(seed: int, locations: int, days: int, per_location_day: float = 0.05) -> World:
    rng = random.Random(seed)
    hosts = (*AUTHORITIES, NO_CONTACTS[0])
    placers = (*AUTHORITIES, *NO_CONTACTS)
    sites: dict[str, Location] = {}
    placements: list[tuple[str, str]] = []
    for n in range(locations):
        location_id = f"1-7{seed % 100:02d}{n:06d}"
        host = hosts[n % len(hosts)]
        sites[location_id] = Location(
            location_id=location_id,
            provider_id=f"1-8{seed % 100:02d}{n:06d}",
            service_type="home_care" if n % 2 else "care_home",
            capacity=20,
            host_authority=host,
        )
        for authority in rng.sample([p for p in placers if p != host], rng.randint(0, 2)):
            placements.append((authority, location_id))
    # Ends two days ago: all of it within ingest's age limit, none of it in the future.
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days + 2)
    weights = [w for *_, w in EVENT_MIX]
    timed: list[tuple[datetime, str, str, dict[str, Any]]] = []
    for location_id in sites:
        # Some locations are troubled, most are quiet.
        rate = per_location_day * rng.choice((0.2, 0.5, 1, 3))
        for day in range(days):
            if rng.random() < rate:
                short, data, _ = rng.choices(EVENT_MIX, weights)[0]
                at = start + timedelta(days=day, seconds=rng.randrange(86_400))
                timed.append((at, location_id, short, data))
    timed.sort(key=lambda t: (t[0], t[1]))
    events = [
        example_event(short, event_id=f"f{seed}-{i:06d}", source=SOURCE, location_id=loc, time=at, data=data)
        for i, (at, loc, short, data) in enumerate(timed)
    ]
    return World(sites, placements, events)


def location_record(location: Location) -> dict[str, Any]:
    return location.model_dump(mode="json", exclude_none=True)


# --- the oracle --------------------------------------------------------------------


def fault_policy() -> Policy:
    return parse_policy(PIPELINE_POLICY)


@dataclass(frozen=True)
class Expected:
    changes: dict[str, LevelChange]  # by change_id
    applied: int  # events that change a state (the scorer's "applied" count)


def expected_changes(world: World, events: Iterable[Mapping[str, Any]]) -> Expected:
    """Every level change the scorer must publish for these events, sent in this order."""
    engine = Replay(world.locations, fault_policy(), signal_hours=None)  # clock interval 0: no signals
    for event in events:
        engine.event(event)
    changes = {c.change_id: c for c in engine.level_changes}
    assert len(changes) == len(engine.level_changes), "the oracle decided one change id twice"
    return Expected(changes, engine.result.statuses["applied"])


def expected_deliveries(world: World, changes: Iterable[LevelChange], contacts: Iterable[str]) -> set[tuple[str, str]]:
    """(authority, change_id) for each webhook delivery: the host authority and every
    authority with an active placement, if it has a contact point. Every contact point
    takes Minor and above, and a fall is told by the level it falls from, so every
    location change reaches all of them."""
    with_contacts = set(contacts)
    wanted: set[tuple[str, str]] = set()
    for change in changes:
        assert change.scope == "location" and change.location_id is not None
        told = {world.locations[change.location_id].host_authority} | world.placing(change.location_id)
        wanted |= {(authority, change.change_id) for authority in told & with_contacts}
    return wanted


# --- audits ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeAudit:
    records: int  # level changes read from the topic, repeats included
    lost: list[str]
    extra: list[str]  # published, never expected (e.g. one decision under a second id)
    conflicting: list[str]  # one id published with different contents
    repeats: int  # the same change again, same id and content: harmless to consumers

    @property
    def duplicated(self) -> int:
        return len(self.extra) + len(self.conflicting)


def audit_changes(expected: Mapping[str, LevelChange], values: Sequence[bytes]) -> ChangeAudit:
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for value in values:
        change = LevelChange.model_validate_json(value)
        seen[change.change_id].append(change.model_dump(mode="json"))
    conflicting = sorted(
        cid
        for cid, versions in seen.items()
        if any(v != versions[0] for v in versions)
        or (cid in expected and versions[0] != expected[cid].model_dump(mode="json"))
    )
    return ChangeAudit(
        records=len(values),
        lost=sorted(set(expected) - set(seen)),
        extra=sorted(set(seen) - set(expected)),
        conflicting=conflicting,
        repeats=len(values) - len(seen),
    )


@dataclass(frozen=True)
class DeliveryAudit:
    received: int  # accepted webhook requests, resends included
    lost: list[tuple[str, str]]
    extra: list[tuple[str, str]]
    duplicated: list[tuple[str, str]]  # one delivery under two or more webhook ids
    resent: int  # the same webhook id again (a request in flight at a crash)


def received_deliveries(hooks: Mapping[str, WebhookReceiver]) -> dict[tuple[str, str], list[str]]:
    """(authority, change_id) -> the webhook ids it arrived under, resends included."""
    got: dict[tuple[str, str], list[str]] = defaultdict(list)
    for authority, hook in hooks.items():
        for request in hook.received():
            got[(authority, request.body["data"]["change_id"])].append(str(request.webhook_id))
    return got


def audit_deliveries(expected: set[tuple[str, str]], hooks: Mapping[str, WebhookReceiver]) -> DeliveryAudit:
    got = received_deliveries(hooks)
    return DeliveryAudit(
        received=sum(len(ids) for ids in got.values()),
        lost=sorted(expected - set(got)),
        extra=sorted(set(got) - expected),
        duplicated=sorted(k for k, ids in got.items() if len(set(ids)) > 1),
        resent=sum(len(ids) - len(set(ids)) for ids in got.values()),
    )


def wait_for_deliveries(
    expected: set[tuple[str, str]], hooks: Mapping[str, WebhookReceiver], timeout_s: float
) -> DeliveryAudit:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not expected <= set(received_deliveries(hooks)):
        time.sleep(0.3)
    time.sleep(2)  # anything arriving late is part of the answer (duplicates)
    return audit_deliveries(expected, hooks)


def read_changes(bootstrap: str, topic: str, done: Callable[[list[bytes]], bool], timeout_s: float) -> list[bytes]:
    """Every committed level change on the topic, read until `done` or the timeout."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
            if done(values):
                for batch in consumer.poll(timeout_ms=2000).values():
                    values.extend(r.value for r in batch)
                break
    finally:
        consumer.close()
    return values


def audit_scored_run(
    fault: str,
    cycles: int,
    world: World,
    sent: Sequence[Mapping[str, Any]],
    bootstrap: str,
    topic: str,
    started: float,
    note: str,
) -> ChangeAudit:
    """The scorer tests' verdict: every change on the topic against the oracle over the
    events sent, recorded as a tally; no change lost, none the oracle never decided, no
    id with two contents."""
    expected = expected_changes(world, sent)
    assert len(expected.changes) >= 20, "too few changes for the faults to matter"
    values = read_changes(bootstrap, topic, all_published(expected.changes), 240)
    audit = audit_changes(expected.changes, values)
    record(
        Tally(
            fault,
            cycles,
            len(sent),
            len(expected.changes),
            0,
            len(audit.lost),
            audit.duplicated,
            time.monotonic() - started,
            f"{audit.repeats} identical re-publications; {note}",
        )
    )
    assert audit.lost == [], f"level changes lost: {audit.lost[:10]}"
    assert audit.extra == [], f"changes the oracle never decided (a decision under a second id?): {audit.extra[:10]}"
    assert audit.conflicting == [], f"one change id with other content: {audit.conflicting[:10]}"
    return audit


def all_published(expected: Mapping[str, LevelChange]) -> Callable[[list[bytes]], bool]:
    def done(values: list[bytes]) -> bool:
        return set(expected) <= {LevelChange.model_validate_json(v).change_id for v in values}

    return done


def end_offsets(bootstrap: str, topic: str) -> int:
    """Records ever written to the topic: the sum of its partitions' end offsets."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


# --- tallies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    fault: str
    cycles: int
    events: int
    changes: int
    deliveries: int
    lost: int
    duplicated: int
    seconds: float
    note: str = ""


TALLIES: list[Tally] = []


def record(tally: Tally) -> None:
    TALLIES.append(tally)


def table(tallies: Sequence[Tally]) -> str:
    head = ("fault", "cycles", "events", "changes", "deliveries", "lost", "duplicated", "seconds", "note")
    rows = [
        (
            t.fault,
            str(t.cycles),
            str(t.events),
            str(t.changes),
            str(t.deliveries),
            str(t.lost),
            str(t.duplicated),
            f"{t.seconds:.0f}",
            t.note,
        )
        for t in tallies
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
