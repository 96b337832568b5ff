"""Faust's Kafka transport, with the seek that makes a rebalance lose no record.

After a rebalance Faust stops its flow while it recovers the tables; records fetched in
that time are dropped, and Faust relies on seeking every stream partition back to its
committed offset to fetch them again. aiokafka's `seek_to_committed` seeks only where
the committed offset is above 0: a partition the group has never committed (a new
deployment, a new topic, or a rebalance before the first commit) stays where the dropped
fetch left it, and the records before that position are never scored. Seen in
tests/test_scoring_workers.py: two workers starting together, the second's directory
partitions fetched to their end (position 5) with nothing read, acked or committed,
lagging for ever.

Here a stream partition without a committed offset is sought to the beginning, which is
what `consumer_auto_offset_reset="earliest"` would have read, and one committed at 0 to 0.
The tables' changelog partitions are left as they were: the recovery positions them.
"""

from collections.abc import Mapping, Set
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types import TP, TransportT


async def seek_to_committed_or_earliest(
    consumer: AIOKafkaConsumer, changelog_topics: Set[str]
) -> Mapping[Any, int | None]:
    """Seek every assigned partition to its committed offset; a stream partition with
    none (or 0) to its first record. Runs on the consumer's own event loop."""
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    streams = {tp: offset for tp, offset in committed.items() if tp.topic not in changelog_topics}
    for tp, offset in streams.items():
        if offset == 0:
            consumer.seek(tp, 0)
    never = [tp for tp, offset in streams.items() if offset is None]
    if never:
        await consumer.seek_to_beginning(*never)
    return committed


class SeekingConsumerThread(AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        changelogs = set(self.app.tables.changelog_topics)
        result: Mapping[TP, int] = await self.call_thread(seek_to_committed_or_earliest, consumer, changelogs)
        return result


class SeekingConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return SeekingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class SeekingTransport(Transport):
    Consumer = SeekingConsumer


class ScoringApp(faust.App):
    """A Faust app on the seeking transport (kafka:// only)."""

    def _new_transport(self) -> TransportT:
        return SeekingTransport(self.conf.broker_consumer, self)
