"""The scorer's transport against the real broker. Its seek after a rebalance: a stream
partition the group never committed goes back to its first record (aiokafka alone leaves
it where a dropped fetch left it: those records were never scored), a committed one to
its commit, and a table's changelog partition stays where it is. Its flush before a
commit: every record sent before it acknowledged."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.types import TP
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.scoring.transport import (
    Continuity,
    ScoringApp,
    seek_partitions_to_committed,
    seek_to_committed_or_earliest,
)

pytestmark = pytest.mark.integration


async def fetch_all(consumer: AIOKafkaConsumer, want: int) -> int:
    got = 0
    for _ in range(40):
        batches = await consumer.getmany(timeout_ms=250)
        got += sum(len(records) for records in batches.values())
        if got >= want:
            break
    return got


@contextlib.asynccontextmanager
async def fetched_to_the_end(bootstrap: str, tps: list[TopicPartition]) -> AsyncIterator[AIOKafkaConsumer]:
    """Five records on each partition, and a consumer of a new group that has fetched them
    all and processed none, as in a rebalance."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for tp in tps:
            for n in range(5):
                await producer.send_and_wait(tp.topic, f"{n}".encode(), key=f"k{n}".encode(), partition=tp.partition)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"seek-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        assert await fetch_all(consumer, 5 * len(tps)) == 5 * len(tps)
        yield consumer
    finally:
        await consumer.stop()


async def test_never_committed_goes_to_the_start_committed_to_its_commit_changelog_stays(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    never, committed, changelog = (
        TopicPartition(topics.events, 0),
        TopicPartition(topics.events, 1),
        TopicPartition(topics.locations, 0),
    )
    async with fetched_to_the_end(bootstrap, [never, committed, changelog]) as consumer:
        await consumer.commit({committed: OffsetAndMetadata(3, "")})
        for tp in (never, committed, changelog):
            assert await consumer.position(tp) == 5

        offsets = await seek_to_committed_or_earliest(consumer, {topics.locations})

        assert offsets == {never: None, committed: 3, changelog: None}
        assert await consumer.position(never) == 0
        assert await consumer.position(committed) == 3
        assert await consumer.position(changelog) == 5
        # What aiokafka's own seek_to_committed skips is fetched again.
        assert await fetch_all(consumer, 7) == 5 + 2


async def test_a_flush_returns_only_once_every_record_sent_before_it_is_acknowledged(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    """Faust's own flush gave up after 0.1 s without a record leaving its buffer: a table
    write queued behind one that aiokafka was still waiting to send (here: for a topic's
    metadata; in the soak, for a restarting broker) was not yet acknowledged when the
    offsets were committed."""
    bootstrap = kafka_settings.bootstrap_servers
    app = ScoringApp(f"flush-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", producer_acks=-1)
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    later = f"{topics.events}-later"  # created only while the flush waits
    producer = app.producer
    await producer.start()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        blocked = app.topic(later, **raw).send_soon(key=b"k", value=b"first")
        queued = [
            app.topic(topics.events, **raw).send_soon(key=b"k", value=f"{n}".encode(), partition=0) for n in range(5)
        ]
        flush = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(1.5)
        assert not flush.done(), "the flush returned while records sent before it were unacknowledged"

        admin.create_topics([NewTopic(later, num_partitions=1, replication_factor=1)])
        await asyncio.wait_for(flush, timeout=60)
        assert all(f.done() and not f.cancelled() and f.exception() is None for f in [blocked, *queued])
        assert end_offset(bootstrap, topics.events, 0) == 5
    finally:
        await producer.stop()
        with contextlib.suppress(KafkaError):
            admin.delete_topics([later])
        admin.close()


async def test_a_seek_lost_in_a_rebalance_is_made_for_its_partitions_alone(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    # The fallback when Faust's seek after a rebalance timed out: the partitions still
    # awaiting it go to their commits; one being scored meanwhile keeps its position.
    bootstrap = kafka_settings.bootstrap_servers
    committed, never, scoring = (TopicPartition(topics.events, n) for n in range(3))
    async with fetched_to_the_end(bootstrap, [committed, never, scoring]) as consumer:
        await consumer.commit({committed: OffsetAndMetadata(3, ""), scoring: OffsetAndMetadata(1, "")})

        offsets = await seek_partitions_to_committed(consumer, {committed, never})

        assert offsets == {committed: 3, never: None}
        assert await consumer.position(committed) == 3
        assert await consumer.position(never) == 0
        assert await consumer.position(scoring) == 5
        assert await fetch_all(consumer, 7) == 2 + 5


def end_offset(bootstrap: str, topic: str, partition: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = KafkaTopicPartition(topic, partition)
        offset: int = consumer.end_offsets([tp])[tp]
        return offset
    finally:
        consumer.close()


def test_continuity_sends_a_partition_back_to_a_missing_record_once() -> None:
    events, other = TP("events", 0), TP("events", 1)
    continuity = Continuity()
    continuity.sought({events: 10, other: None})

    assert continuity.admit(events, 10) is None
    assert continuity.admit(events, 11) is None
    # 12 to 14 were fetched and dropped around a seek: 15 must wait for them.
    assert continuity.admit(events, 15) == 12
    assert continuity.admit(events, 12) is None
    assert continuity.admit(events, 13) is None
    # A record the broker no longer has (deleted by retention): sought back once, then taken.
    assert continuity.admit(events, 20) == 14
    assert continuity.admit(events, 20) is None
    assert continuity.admit(events, 21) is None
    # Redelivered records are Faust's duplicates to drop, not a hole.
    assert continuity.admit(events, 18) is None
    assert continuity.admit(events, 22) is None
    # A partition sought to its beginning: a first record after 0 is sought back to the
    # start once (it may be a fetch from before the seek), then taken as the first.
    assert continuity.admit(other, 7) == 0
    assert continuity.admit(other, 7) is None
    assert continuity.admit(other, 9) == 8


def test_continuity_holds_a_partition_back_from_its_revocation_until_it_is_sought() -> None:
    events, fresh = TP("events", 0), TP("events", 1)
    continuity = Continuity()
    # A partition this worker never sought (a new worker, a partition new to it).
    assert continuity.awaiting_seek(fresh)
    continuity.sought({events: 800})
    assert not continuity.awaiting_seek(events)
    assert continuity.admit(events, 800) is None

    # Revoked (or assigned again): whatever arrives before the seek to its commit comes
    # from a position before the rebalance, or after records cleared from the queues.
    continuity.held_back({events})
    assert continuity.awaiting_seek(events)
    continuity.sought({events: 790})
    assert not continuity.awaiting_seek(events)
    assert continuity.admit(events, 869) == 790
    assert continuity.admit(events, 790) is None
