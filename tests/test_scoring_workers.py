"""Several `caresignal scorer` processes in one consumer group: one recorded simulator
scenario through one, two and three workers (the third joining late and the first
leaving while events flow) gives the pure replay's location level changes, and every
worker answers the risk view for every location."""

import json
import signal
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from schemas.directory import Location
from schemas.risk import LevelChange
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.evaluation.changes import Change
from services.evaluation.replay import Replay, organisation_changes
from services.scoring.policy import Policy, parse_policy
from services.scoring.worker import REPARTITION_NAME
from services.simulator.config import SimulationConfig
from services.simulator.population import Population
from services.simulator.run import simulate
from services.simulator.sinks import encode
from tests.service_process import ScorerProcess, free_port, start_together, wait_caught_up
from tests.test_evaluation_pipeline import PIPELINE_POLICY

pytestmark = pytest.mark.integration

# 120 days: long enough for levels to fall again (a 28-day window, then 14 days at the level).
WORLD = SimulationConfig(seed=3, locations=30, days=120, start=date.today() - timedelta(days=135))
# No peer rules: a location's peer view sums every partition's rows of a global table,
# which each worker sees only as fast as the other workers' changelog reaches it, so
# peer-driven levels depend on how partitions interleave (and across workers, on timing);
# every other rule depends on one partition's order, which Kafka keeps. An organisation
# rule is added to see whether the roll-up depends on the interleaving.
POLICY = (
    PIPELINE_POLICY
    + """
organisation:
  description: Two locations of one provider at Minor or above
  min_locations: 2
  at_or_above: minor
  level: moderate
"""
)
# A location change as the issue compares them.
Key = tuple[str, int, str, str, tuple[str, ...]]


def key_of(change: LevelChange) -> Key:
    return (
        change.location_id or "",
        change.sequence,
        change.new_level.value,
        change.decided_at.isoformat(),
        tuple(r.rule_id for r in change.reasons),
    )


@dataclass(frozen=True)
class Scenario:
    population: Population
    events: list[dict[str, Any]]
    policy: Policy
    expected: list[LevelChange]
    levels: dict[str, str]  # each scored location's final level
    organisations: list[Change]

    @property
    def locations(self) -> dict[str, Location]:
        return {s.location_id: s.location for s in self.population.sites}


class Recorder:
    """A simulator sink that keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def directory(self, population: Population) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    recorder = Recorder()
    run = simulate(WORLD, recorder)
    policy = parse_policy(POLICY)
    locations = {s.location_id: s.location for s in run.population.sites}
    # The worker sends no time signals (clock interval 0): neither does the replay.
    engine = Replay(locations, policy, signal_hours=None)
    for event in recorder.events:
        engine.event(event)
    expected = engine.level_changes
    levels = {k: s.current.level.name for k, s in engine.states.items()}
    # Falls as well as rises, and some decided by a tick (no event at that time).
    assert {c.direction for c in expected} == {"escalation", "de-escalation"}
    event_times = {(e["subject"], e["time"]) for e in recorder.events}
    ticked = [c for c in expected if (c.location_id, c.decided_at.isoformat()) not in event_times]
    assert len(expected) >= 20 and ticked
    return Scenario(run.population, recorder.events, policy, expected, levels, organisation_changes(expected, policy))


@dataclass
class Worker(ScorerProcess):
    policy_file: Path = Path()
    standby_replicas: int = 1

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "CARESIGNAL_SCORING_CLOCK_INTERVAL_S": "0",
            "CARESIGNAL_SCORING_POLICY_FILE": str(self.policy_file),
            "CARESIGNAL_SCORING_STANDBY_REPLICAS": str(self.standby_replicas),
            "CARESIGNAL_SCORING_LOG_LEVEL": "info",
        }


@pytest.fixture
def workers(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[list[Worker]]:
    """Three scorer processes of one consumer group (one app id), each with its own
    data directory and port; started by the test, stopped afterwards."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    app_id = f"scorers-test-{tmp_path.name[-12:]}-{free_port()}"
    made = []
    for n in range(3):
        (tmp_path / f"w{n}").mkdir()
        made.append(
            Worker(
                topic_prefix=test_kafka_settings.topic_prefix,
                workdir=tmp_path / f"w{n}",
                app_id=app_id,
                policy_file=policy_file,
            )
        )
    try:
        yield made
    finally:
        for worker in made:
            worker.stop()
        # Not one of the test's topics: faust makes it.
        admin = KafkaAdminClient(bootstrap_servers=test_kafka_settings.bootstrap_servers)
        try:
            admin.delete_topics([repartition_topic(test_kafka_settings.topics)])
        except KafkaError as exc:
            warnings.warn(f"could not delete the roll-up's repartition topic: {exc}", stacklevel=1)
        finally:
            admin.close()


def produce_directory(bootstrap: str, topics: Topics, population: Population) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for site in population.sites:
        producer.send(topics.locations, key=site.location.key.encode(), value=site.location.model_dump_json().encode())
    producer.flush()
    producer.close()
    return len(population.sites)


def produce_events(bootstrap: str, topics: Topics, events: list[dict[str, Any]], per_second: float = 0) -> None:
    """Keyed by location (murmur2, as ingest and the simulator do); paced if asked."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    started = time.monotonic()
    for n, event in enumerate(events):
        if per_second:
            delay = started + n / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.send(topics.events, key=event["subject"].encode(), value=encode(event).encode())
    producer.flush()
    producer.close()


def repartition_topic(topics: Topics) -> str:
    # Named after the agent and the changes topic, not the app id (faust's derive()).
    return f"organisations-{topics.risk_changes}-{REPARTITION_NAME}-repartition"


def wait_settled(bootstrap: str, group: str, topics: Topics) -> None:
    """Until the group has scored every event and rolled up every change: the roll-up
    reads the changes topic through a repartition topic."""
    for _ in range(2):  # the roll-up's own changes go to the changes topic too
        for topic in (topics.events, topics.risk_changes, repartition_topic(topics)):
            wait_caught_up(bootstrap, group, topic)
        time.sleep(1)


def read_changes(bootstrap: str, topic: str, timeout_s: float = 30) -> list[LevelChange]:
    """Every change on the topic, to its end (once the scorers have settled)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
    finally:
        consumer.close()
    return [LevelChange.model_validate_json(v) for v in values]


def check_changes(published: list[LevelChange], scenario: Scenario) -> dict[str, Any]:
    """The run's location changes, deduplicated by change_id, are the replay's; a repeat
    (at least once, after a rebalance) is the very same change."""
    by_id: dict[str, set[str]] = defaultdict(set)
    for change in published:
        by_id[change.change_id].add(change.model_dump_json())
    differing = {k: v for k, v in by_id.items() if len(v) > 1}
    assert not differing, f"one change_id, different content: {differing}"
    locations = {c.change_id: c for c in published if c.scope == "location"}
    got = sorted(key_of(c) for c in locations.values())
    want = sorted(key_of(c) for c in scenario.expected)
    assert got == want, f"missing {sorted(set(want) - set(got))}; unexpected {sorted(set(got) - set(want))}"
    organisations = sorted(
        (c.provider_id, c.sequence, c.new_level.value, c.decided_at.isoformat(), tuple(c.locations))
        for c in {c.change_id: c for c in published if c.scope == "organisation"}.values()
    )
    return {
        "published": len(published),
        "repeats": len(published) - len(by_id),
        "organisations": organisations,
        "organisations_as_replay": sorted(
            (o.subject, o.sequence, o.new.name, o.time.isoformat()) for o in scenario.organisations
        )
        == sorted(o[:4] for o in organisations),
    }


def check_risk_views(workers: list[Worker], scenario: Scenario) -> None:
    """Every worker answers for every location, whichever worker holds it."""
    wrong = []
    with httpx.Client(timeout=15) as client:
        for worker in workers:
            for location_id in sorted(scenario.locations):
                response = client.get(f"{worker.url}/v1/locations/{location_id}/risk")
                level = scenario.levels.get(location_id)
                if level is None:
                    ok = response.status_code == 404
                else:
                    ok = response.status_code == 200 and response.json()["level"] == level
                if not ok:
                    wrong.append((worker.port, location_id, response.status_code, response.text[:120], level))
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {wrong[:5]}"


def event_statuses(worker: Worker) -> dict[str, float]:
    """The worker's scored events by status (applied, late, duplicate, ...)."""
    text = httpx.get(f"{worker.url}/metrics", timeout=10).text
    counts: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("caresignal_scoring_events_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('status="', 1)[1].split('"', 1)[0]] += float(value)
    return dict(counts)


def events_applied(worker: Worker) -> float:
    return event_statuses(worker).get("applied", 0.0)


def report(name: str, started: float, result: dict[str, Any]) -> None:
    print(f"\n{name}: {time.monotonic() - started:.1f}s, {json.dumps(result, default=str)}")


@pytest.mark.parametrize("count", [1, 2], ids=["one worker", "two workers"])
def test_workers_started_together_give_the_replays_changes(
    count: int, workers: list[Worker], scenario: Scenario, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    started = time.monotonic()
    bootstrap = test_kafka_settings.bootstrap_servers
    running = workers[:count]
    produce_directory(bootstrap, topics, scenario.population)
    # Started together, the second joins while the first reads the directory: the
    # rebalance that once left never-committed partitions unread (services/scoring/transport.py).
    start_together(running)
    wait_caught_up(bootstrap, running[0].app_id, topics.locations)
    produce_events(bootstrap, topics, scenario.events)
    wait_settled(bootstrap, running[0].app_id, topics)
    published = read_changes(bootstrap, topics.risk_changes)
    result = check_changes(published, scenario)
    applied = [events_applied(w) for w in running]
    assert all(applied), f"a worker scored nothing: {applied}"
    check_risk_views(running, scenario)
    report(f"{count} worker(s)", started, {**result, "applied": applied})


@pytest.mark.rebalance
def test_three_workers_joining_and_leaving_under_load_give_the_replays_changes(
    workers: list[Worker], scenario: Scenario, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    started = time.monotonic()
    bootstrap = test_kafka_settings.bootstrap_servers
    first, second, late = workers
    produce_directory(bootstrap, topics, scenario.population)
    start_together([first, second])
    wait_caught_up(bootstrap, first.app_id, topics.locations)

    # The events flow in three parts, gated so that each move happens while they flow:
    # the third worker joins during the first part, the first worker leaves halfway
    # through the second, and the last part comes once it has gone.
    events = scenario.events
    a, half_b, b = len(events) * 4 // 10, len(events) * 55 // 100, len(events) * 7 // 10
    joined, halfway, left = threading.Event(), threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def feed() -> None:
        try:
            produce_events(bootstrap, topics, events[:a], per_second=a / 12)
            assert joined.wait(180), "the third worker never joined"
            produce_events(bootstrap, topics, events[a:half_b], per_second=(half_b - a) / 4)
            halfway.set()
            produce_events(bootstrap, topics, events[half_b:b], per_second=(b - half_b) / 4)
            assert left.wait(180), "the first worker never left"
            produce_events(bootstrap, topics, events[b:])
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
            halfway.set()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    joining = time.monotonic()
    joiner = threading.Thread(target=late.start, kwargs={"timeout_s": 150}, daemon=True)
    joiner.start()
    joiner.join(timeout=160)
    assert httpx.get(f"{late.url}/readyz", timeout=10).status_code == 200, late.log_tail()
    join_s = time.monotonic() - joining
    joined.set()
    assert halfway.wait(60) and not failures, failures
    before_leaving = event_statuses(first)
    left_at = time.monotonic()
    assert first.process is not None
    first.process.send_signal(signal.SIGTERM)  # its partitions move to the others as events come
    first.process.wait(timeout=60)
    stop_s = time.monotonic() - left_at
    # The survivors take its partitions over: with standby replicas their tables are
    # already there, so they are soon ready again.
    for worker in (second, late):
        response = httpx.get(f"{worker.url}/readyz", timeout=10)
        deadline = time.monotonic() + 60
        while response.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            response = httpx.get(f"{worker.url}/readyz", timeout=10)
        assert response.status_code == 200, response.text
    takeover_s = time.monotonic() - left_at
    left.set()
    feeder.join(timeout=60)
    assert not feeder.is_alive() and not failures, failures

    wait_settled(bootstrap, first.app_id, topics)
    statuses = [before_leaving, event_statuses(second), event_statuses(late)]
    assert all(s.get("applied") for s in statuses), f"a worker scored nothing: {statuses}"
    published = read_changes(bootstrap, topics.risk_changes)
    result = check_changes(published, scenario)
    check_risk_views([second, late], scenario)
    report(
        "three workers",
        started,
        {
            "join_s": round(join_s, 1),
            "stop_s": round(stop_s, 1),
            "takeover_s": round(takeover_s, 1),
            "statuses": statuses,
            **result,
        },
    )
    assert takeover_s < 30
