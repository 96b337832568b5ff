"""The scorer's seek after a rebalance, against the real broker: a stream partition the
group never committed goes back to its first record (aiokafka alone leaves it where a
dropped fetch left it: those records were never scored), a committed one to its commit,
and a table's changelog partition stays where it is."""

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.scoring.transport import seek_to_committed_or_earliest

pytestmark = pytest.mark.integration


async def fetch_all(consumer: AIOKafkaConsumer, want: int) -> int:
    got = 0
    for _ in range(40):
        batches = await consumer.getmany(timeout_ms=250)
        got += sum(len(records) for records in batches.values())
        if got >= want:
            break
    return got


async def test_never_committed_goes_to_the_start_committed_to_its_commit_changelog_stays(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    never, committed, changelog = (
        TopicPartition(topics.events, 0),
        TopicPartition(topics.events, 1),
        TopicPartition(topics.locations, 0),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for tp in (never, committed, changelog):
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
        consumer.assign([never, committed, changelog])
        # As in a rebalance: everything fetched, and dropped unprocessed.
        assert await fetch_all(consumer, 15) == 15
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
    finally:
        await consumer.stop()
