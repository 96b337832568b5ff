"""A worker taking a partition over after its owner was killed -9 half way through
writing its states back (`Scorer.settled`): against the oracle, the changes come out the
same.

A commit writes every changed state to the state table (one changelog record each, in
location order) and commits the offsets once they are acknowledged. A kill while they
are on their way leaves the changelog with some of those states (as of the events
applied) and the others as of the last commit, whose offset is where the next worker
starts. Replaying from there, an event already in its location's newer state is a
duplicate. The worker moved its partition's clock on to that state's clock (the time of
the location's latest event, later than the event replayed): locations still behind
were ticked at due times their next events, still to come, would have kept them from
(a level fell, then rose again at the event), and the changes differed from the
oracle's: seen in tests/test_fault_workers.py's two-worker form (2 changes the oracle
never decided, 4 with other contents). A duplicate now moves the clock on to its own
time, as it did when it was first applied.

The changelogs are written here as such a kill leaves them, for a scenario the pure
replay showed to differ, and a real scorer process takes the partition over."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from services.broker.settings import KafkaSettings
from services.evaluation.replay import Replay
from services.scoring.routing import PARTITIONS, partition_of
from services.scoring.state_codec import encode_state
from services.simulator.sinks import encode
from tests.fault_drivers import FaultScorer, fault_scorer, scorer_metric
from tests.faults import all_published, audit_changes, fault_policy, make_world, read_changes

pytestmark = pytest.mark.integration

# Found with the pure replay (services.evaluation.replay): partition 2 of this world,
# committed after its 86th event, killed after its 119th while writing back the first two of
# its changed locations (in the write-back's order): the old worker's changes differed.
SEED, PARTITION, COMMITTED, APPLIED, WRITTEN = 15, 2, 86, 119, 2
STATUSES = ("applied", "late", "duplicate", "expired")
# The scorer's tables this test writes as the killed worker left them.
TABLES = ("directory-locations", "location-state", "partition-clocks")


@pytest.fixture
def scorer(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[FaultScorer]:
    process = fault_scorer(tmp_path, test_kafka_settings.topic_prefix)
    try:
        yield process
    finally:
        process.stop()
        admin = KafkaAdminClient(bootstrap_servers=test_kafka_settings.bootstrap_servers)
        try:
            admin.delete_topics([changelog(process.app_id, t) for t in TABLES])
        finally:
            admin.close()


def changelog(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def table_key(key: str) -> bytes:
    # Faust stores a str key as JSON.
    return json.dumps(key).encode()


def test_a_partition_taken_over_from_a_write_back_cut_short_gives_the_oracles_changes(
    scorer: FaultScorer, test_kafka_settings: KafkaSettings
) -> None:
    world = make_world(seed=SEED, locations=60, days=200, per_location_day=0.3)
    events = [e for e in world.events if partition_of(e["subject"]) == PARTITION]
    replay = Replay(world.locations, fault_policy(), signal_hours=None)
    for n, event in enumerate(events):
        if n == COMMITTED:
            committed = {loc: encode_state(state) for loc, state in replay.states.items()}
            clock = replay.schedule.clock(PARTITION)
        if n == APPLIED:
            applied = {loc: encode_state(state) for loc, state in replay.states.items()}
            published = list(replay.level_changes)
        replay.event(event)
    expected = {c.change_id: c for c in replay.level_changes}
    changed = sorted(loc for loc, raw in applied.items() if raw != committed.get(loc))
    assert clock is not None and 0 < WRITTEN < len(changed)

    bootstrap = test_kafka_settings.bootstrap_servers
    topics = test_kafka_settings.topics
    # One request at a time: the events keep their order on the partition.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_in_flight_requests_per_connection=1)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(changelog(scorer.app_id, t), PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})
                for t in TABLES
            ]
        )
        for event in events:
            producer.send(topics.events, key=event["subject"].encode(), value=encode(event).encode())
        # What the killed worker left: the directory it had read, its changes published
        # up to the kill, the states and clock of its last commit, then the first of the
        # next write-back's states.
        directory = changelog(scorer.app_id, "directory-locations")
        for location_id, location in world.locations.items():
            value = location.model_dump_json().encode()
            producer.send(directory, key=table_key(location_id), value=value, partition=partition_of(location_id))
        for change in published:
            producer.send(topics.risk_changes, key=change.key.encode(), value=change.model_dump_json().encode())
        states = changelog(scorer.app_id, "location-state")
        for location_id, raw in [*committed.items(), *((loc, applied[loc]) for loc in changed[:WRITTEN])]:
            producer.send(states, key=table_key(location_id), value=raw, partition=PARTITION)
        value = json.dumps({"clock": clock.isoformat()}).encode()
        clocks = changelog(scorer.app_id, "partition-clocks")
        producer.send(clocks, key=table_key(str(PARTITION)), value=value, partition=PARTITION)
        producer.flush()
    finally:
        producer.close()
        admin.close()
    commit(bootstrap, scorer.app_id, TopicPartition(topics.events, PARTITION), COMMITTED)

    scorer.start()
    values = read_changes(bootstrap, topics.risk_changes, all_published(expected), 90)
    audit = audit_changes(expected, values)
    statuses = {s: scorer_metric(scorer.url, "caresignal_scoring_events_total", status=s) for s in STATUSES}
    assert (audit.lost, audit.extra, audit.conflicting) == ([], [], []), (audit, statuses)


def commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    """The group's committed offset, as the killed worker's last commit left it."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()
