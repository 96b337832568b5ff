"""The scorer and the stream: partitions, the stream's time, backfills and reused ids.

A real scorer process against the real broker, as in test_scoring_worker.py.
"""

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from schemas.risk import LevelChange
from schemas.topics import BACKFILL_HEADER, Topics
from services.broker.settings import KafkaSettings
from services.scoring.routing import REROUTED_FROM_HEADER, partition_of
from tests.conftest import consume_all
from tests.service_process import ScorerProcess, committed_reader, read_until
from tests.test_scoring_model import POLICY
from tests.test_scoring_worker import VERSION, PolicyScorer, missed, serious

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def scorer(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ScorerProcess]:
    process = PolicyScorer(topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path)
    try:
        yield process
    finally:
        process.stop()


def produce(
    bootstrap: str, topic: str, events: list[dict[str, object]], headers: list[tuple[str, bytes]] | None = None
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for event in events:
        producer.send(topic, key=str(event["subject"]).encode(), value=json.dumps(event).encode(), headers=headers)
    producer.flush()
    producer.close()


def changes(bootstrap: str, topic: str, count: int, timeout_s: float = 60) -> list[LevelChange]:
    reader = committed_reader(bootstrap, topic)
    try:
        values = read_until(reader, lambda v: len(v) >= count, timeout_s=timeout_s)
    finally:
        reader.close()
    return [LevelChange.model_validate_json(v) for v in values]


def metric(url: str, line: str) -> bool:
    return line in httpx.get(f"{url}/metrics", timeout=10).text


def test_a_record_on_the_wrong_partition_is_rerouted_and_the_location_keeps_one_state(
    scorer: ScorerProcess, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    bootstrap = test_kafka_settings.bootstrap_servers
    location_id = "1-600000001"  # murmur2: partition 3; kcat's default (CRC32): partition 2
    right = partition_of(location_id)
    start = NOW - timedelta(days=10)
    produce(bootstrap, topics.events, [missed(f"mv-{i}", location_id, start + timedelta(hours=i)) for i in range(3)])
    concern = json.dumps(serious("sg-kcat", location_id, start + timedelta(days=1)))
    # kcat's default partitioner, as an external producer would use it.
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topics.events, "-K", "\t"],
        input=f"{location_id}\t{concern}\n".encode(),
        check=True,
        timeout=30,
    )
    scorer.start()
    found = changes(bootstrap, topics.risk_changes, 2)
    assert [(c.change_id, c.new_level) for c in found] == [
        (f"{location_id}:{VERSION}:1", "minor"),
        (f"{location_id}:{VERSION}:2", "major"),
    ]

    risk = httpx.get(f"{scorer.url}/v1/locations/{location_id}/risk", timeout=10).json()
    assert risk["level"] == "major"
    assert {e["event_id"] for e in risk["recent_evidence"]} == {"mv-0", "mv-1", "mv-2", "sg-kcat"}
    board = httpx.get(f"{scorer.url}/v1/locations", timeout=10).json()
    assert board["locations"] == [{"location_id": location_id, "level": "major"}]
    assert metric(scorer.url, f'caresignal_scoring_rerouted_records_total{{topic="{topics.events}"}} 1.0')

    # The kcat record really was on another partition, and its copy on the right one says where it came from.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    partitions = [TopicPartition(topics.events, p) for p in range(6)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records = [r for r in consumer if r.key == location_id.encode() and b"sg-kcat" in r.value]
    consumer.close()
    assert len(records) == 2
    original, copy = sorted(records, key=lambda r: REROUTED_FROM_HEADER in dict(r.headers))
    assert original.partition != right and copy.partition == right
    assert (
        dict(copy.headers)[REROUTED_FROM_HEADER] == f"{topics.events}/{original.partition}/{original.offset}".encode()
    )
    assert copy.value == original.value


def test_backfill_changes_are_marked_and_events_older_than_the_streams_retention_are_expired(
    scorer: ScorerProcess, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    bootstrap = test_kafka_settings.bootstrap_servers
    scorer.start()
    produce(
        bootstrap,
        topics.events,
        [serious("sg-history", "1-700000000", NOW - timedelta(days=30))],
        [(BACKFILL_HEADER, b"1")],
    )
    # Same partition (murmur2) for the next two: the live event moves the partition's clock to today.
    live, ancient = "1-700000001", "1-700000009"
    assert partition_of(live) == partition_of(ancient)
    produce(bootstrap, topics.events, [serious("sg-live", live, NOW - timedelta(hours=1))])
    produce(bootstrap, topics.events, [serious("sg-2001", ancient, datetime(2001, 3, 1, tzinfo=UTC))])
    found = {c.location_id: c for c in changes(bootstrap, topics.risk_changes, 2)}
    assert found["1-700000000"].backfill is True and found["1-700000000"].new_level == "major"
    assert found[live].backfill is False
    assert ancient not in found, "a concern dated 2001 raised a level against a 2026 stream"
    assert metric(scorer.url, 'caresignal_scoring_late_events_total{kind="expired"} 1.0')
    assert httpx.get(f"{scorer.url}/v1/locations/{ancient}/risk", timeout=10).status_code == 404


def test_a_reused_event_id_with_other_content_is_counted_and_dead_lettered(
    scorer: ScorerProcess, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    bootstrap = test_kafka_settings.bootstrap_servers
    scorer.start()
    location_id = "1-700000002"
    first = missed("mv-reused", location_id, NOW - timedelta(days=2))
    produce(bootstrap, topics.events, [first, first])  # an exact redelivery: silent
    produce(bootstrap, topics.events, [serious("mv-reused", location_id, NOW - timedelta(days=1))])
    dead = consume_all(bootstrap, topics.dead_letter, expect=1, timeout_s=60)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["caresignal.error.reason"] == b"reused_event_id"
    assert b"mv-reused" in headers["caresignal.error.detail"]
    assert json.loads(dead[0].value)["type"].endswith("safeguarding_concern.v1")
    assert metric(scorer.url, 'caresignal_scoring_reused_event_ids_total{event_type="safeguarding_concern"} 1.0')
    assert metric(scorer.url, 'caresignal_scoring_events_total{event_type="missed_visit",status="duplicate"} 1.0')
    risk = httpx.get(f"{scorer.url}/v1/locations/{location_id}/risk", timeout=10).json()
    assert risk["level"] == "none" and [e["event_id"] for e in risk["recent_evidence"]] == ["mv-reused"]


def test_levels_fall_with_time_on_a_partition_no_event_reaches(
    scorer: ScorerProcess, test_kafka_settings: KafkaSettings, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARESIGNAL_SCORING_CLOCK_INTERVAL_S", "1")
    bootstrap = test_kafka_settings.bootstrap_servers
    location_id = "1-700000003"
    # A serious concern holds Major for 90 days; this one is 100 days old.
    produce(bootstrap, topics.events, [serious("sg-old", location_id, NOW - timedelta(days=100))])
    scorer.start()
    started = time.monotonic()
    found = changes(bootstrap, topics.risk_changes, 2, timeout_s=30)
    assert [(c.change_id, c.old_level, c.new_level) for c in found] == [
        (f"{location_id}:{VERSION}:1", "none", "major"),
        (f"{location_id}:{VERSION}:2", "major", "none"),
    ]
    assert time.monotonic() - started < 30
    # Decided when the hold ended (planned then, ticked once a time signal passed it), not
    # at the signal's own time: the level falls when the policy says.
    hold = next(t.hold_days for t in POLICY.triggers if t.id == "serious_abuse_or_neglect")
    assert found[1].decided_at == NOW - timedelta(days=100) + timedelta(days=hold)
    risk = httpx.get(f"{scorer.url}/v1/locations/{location_id}/risk", timeout=10).json()
    assert risk["level"] == "none"
    assert metric(scorer.url, 'caresignal_scoring_time_signals_total{kind="sent"}')


def test_kcat_with_the_readmes_partitioner_puts_every_key_where_the_scorer_expects_it(
    test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    bootstrap = test_kafka_settings.bootstrap_servers
    keys = [f"1-8{n:08d}" for n in range(60)]
    lines = "".join(f"{key}\t{{}}\n" for key in keys)
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topics.events, "-K", "\t", "-X", "partitioner=murmur2_random"],
        input=lines.encode(),
        check=True,
        timeout=30,
    )
    records = consume_all(bootstrap, topics.events, expect=len(keys), timeout_s=30)
    assert len(records) == len(keys)
    assert {r.key.decode(): r.partition for r in records} == {key: partition_of(key) for key in keys}
