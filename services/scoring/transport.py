"""Faust's Kafka transport, with the seek that makes a rebalance lose no record and the
flush that makes a commit wait for the table writes it depends on.

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

A table write goes to Faust's producer buffer (`send_soon`), and Faust flushes the
producer before it commits the input offsets. But the buffer's flush gives up as soon as
0.1 s pass without a record leaving the buffer, and a record the buffer has taken out
but not yet handed to aiokafka counts as gone: while aiokafka waits (a full batch in
flight, a slow or restarting broker, metadata) the offsets were committed ahead of the
changelog records of the states they had changed. After a crash or a rebalance the
recovery then read the previous state of a location whose event was already committed:
that event was never applied, and the changes after it were lost or different
(`make soak`'s broker stop/restart form; the scorer kill test in CI). Here a flush
returns only when every record sent until then is acknowledged, and raises if one
failed, so that a commit never covers a state the changelog does not hold.

The scorer keeps its locations' states in memory and writes them to the table once per
commit (state_cache.py). A commit therefore first passes the app's `commit_barrier`:
it waits until no event is half applied, has every changed state written to the table,
and reads the offsets to commit while the agent still waits, so the offsets never cover
an event whose state is not on its way to the changelog. Once those writes are
acknowledged, the app's `states_acknowledged` writes what must never reach a changelog
ahead of them (the partitions' clocks), and the offsets are committed after that.
"""

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Set
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.exceptions import ProducerSendError
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Producer, Transport
from faust.types import TP, TransportT
from faust.types.tuples import FutureMessage, Message
from mode import Service

from services.scoring.membership import (
    COORDINATION_CHECK_S,
    GroupStatus,
    listed_partitions,
    read_coordination_error,
    wait_for_topics,
)

log = logging.getLogger(__name__)

# aiokafka leaves a partition whose fetched records are not taken within its 100 ms
# prefetch backoff out of the next fetch from that broker, and sends that broker no other
# fetch until it returns: with Faust's 1.5 s (fixed in its driver), a partition the agent
# fell 100 ms behind on waited up to 1.5 s for its next records (15 % of events scored
# over 1 s after ingest at 225 events/s). An idle worker asks 20 times a second instead.
FETCH_MAX_WAIT_MS = 50


class UnacknowledgedWrite(RuntimeError):
    """A record the worker sent (a table's changelog, a forwarded record) was refused:
    committing the input offsets now would cover a state that Kafka does not hold."""


async def _uncommitted_to_start(consumer: AIOKafkaConsumer, streams: Mapping[Any, int | None]) -> None:
    """Each stream partition committed at 0 to 0, and one never committed to its first
    record; the others are left where they are."""
    for tp, offset in streams.items():
        if offset == 0:
            consumer.seek(tp, 0)
    never = [tp for tp, offset in streams.items() if offset is None]
    if never:
        await consumer.seek_to_beginning(*never)


async def seek_to_committed_or_earliest(
    consumer: AIOKafkaConsumer, changelog_topics: Set[str]
) -> Mapping[Any, int | None]:
    """Seek every assigned partition to its committed offset; a stream partition with
    none (or 0) to its first record. Runs on the consumer's own event loop."""
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    await _uncommitted_to_start(consumer, {tp: o for tp, o in committed.items() if tp.topic not in changelog_topics})
    return committed


async def seek_partitions_to_committed(consumer: AIOKafkaConsumer, tps: Set[Any]) -> Mapping[Any, int | None]:
    """Seek these stream partitions, and only these, to their committed offsets (the first
    record where none or 0). Runs on the consumer's own event loop."""
    committed = {tp: await consumer.committed(tp) for tp in tps}
    for tp, offset in committed.items():
        if offset:
            consumer.seek(tp, offset)
    await _uncommitted_to_start(consumer, committed)
    return committed


class SeekingConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Transport) -> AIOKafkaConsumer:
        consumer: AIOKafkaConsumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        changelogs = set(self.app.tables.changelog_topics)
        result: Mapping[TP, int] = await self.call_thread(seek_to_committed_or_earliest, consumer, changelogs)
        return result

    async def seek_partitions_to_committed(self, tps: Set[TP]) -> Mapping[TP, int | None]:
        consumer = self._ensure_consumer()
        result: Mapping[TP, int | None] = await self.call_thread(seek_partitions_to_committed, consumer, tps)
        return result

    def _group_status(self) -> GroupStatus:
        status: GroupStatus = self.app.group_status  # type: ignore[attr-defined]  # a ScoringApp
        return status

    async def subscribe(self, topics: Iterable[str]) -> None:
        # Joins the group only once the broker lists every topic (see membership.py).
        # Waits here, on the app's loop, asking on the consumer's: its method queue stays free.
        names = set(topics)
        consumer = self._ensure_consumer()

        async def partitions(wanted: frozenset[str]) -> Mapping[str, int] | None:
            counts: Mapping[str, int] | None = await self.call_thread(listed_partitions, consumer, wanted)
            return counts

        await wait_for_topics(names, partitions, self._group_status())
        await super().subscribe(names)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._group_status().coordination_error = None
        await super().on_partitions_assigned(assigned, generation_id)

    @Service.task
    async def _read_coordination_errors(self) -> None:
        # aiokafka hands group coordination errors to getmany(), which Faust never calls:
        # unread, they stop the coordinator for good (membership.py). On the consumer's loop.
        while not self.should_stop:
            await self.sleep(COORDINATION_CHECK_S)
            if self._consumer is not None:
                read_coordination_error(self._consumer, self._group_status())


@dataclass
class Continuity:
    """Per partition of a topic whose offsets have no holes (not compacted, no
    transactions: the event and change topics), the next offset owed to the agents.

    Faust resumes a stream partition before it seeks it back to its commit after a
    rebalance or a restart, and drops fetched records in several places around that
    seek while aiokafka's position has moved past them. A restarted scorer was seen to
    score a location's serious concern without the three missed visits just before it
    on the same partition (`test_kill_9_mid_stream...`: eight changes lost). A record
    after a hole is therefore not delivered: the partition is sought back to the first
    missing offset, once; if the broker then has nothing there (a record deleted by
    retention), the next one is taken.

    A partition is held back entirely from its revocation (or assignment) until it is
    sought to its commit: what Faust fetches in between comes from wherever aiokafka's
    position was, and records it handed over before the revocation may have been
    cleared from the agents' queues unprocessed. A worker joining a group was seen to
    score a partition's record 869 before its commit, 800, was sought: the partition's
    clock leapt three days, every location due by then was ticked, and the records
    800-868 then arrived late (test_fault_workers, a change decided with other content).
    """

    next: dict[TP, int] = field(default_factory=dict)
    rewound: dict[TP, int] = field(default_factory=dict)

    def sought(self, offsets: Mapping[TP, int | None]) -> None:
        for tp, offset in offsets.items():
            self.rewound.pop(tp, None)
            # Never committed: sought to its first record, whose offset is not known here
            # (retention may have deleted the ones before it); 0 until the broker says.
            self.next[tp] = offset if offset is not None else 0

    def held_back(self, tps: Iterable[TP]) -> None:
        """These partitions deliver nothing until they are sought again."""
        for tp in tps:
            self.next.pop(tp, None)
            self.rewound.pop(tp, None)

    def awaiting_seek(self, tp: TP) -> bool:
        return tp not in self.next

    def admit(self, tp: TP, offset: int) -> int | None:
        """None: deliver the record; else the offset to seek back to first. Only for a
        partition sought since it was last held back."""
        expected = self.next[tp]
        if offset > expected and self.rewound.get(tp) != expected:
            self.rewound[tp] = expected
            return expected
        if offset >= expected:
            self.next[tp] = offset + 1
            self.rewound.pop(tp, None)
        return None


def _no_topic(topic: str) -> bool:
    return False


class SeekingConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return SeekingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _continuity(self) -> Continuity:
        continuity: Continuity | None = self.__dict__.get("_continuity_state")
        if continuity is None:
            continuity = self.__dict__["_continuity_state"] = Continuity()
        return continuity

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        self._continuity().sought(committed)
        return committed

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._continuity().sought({partition: offset})

    async def _seek_lost(self, tp: TP) -> None:
        # Faust seeks a rebalance's partitions inside its recovery, under a timeout
        # (`broker_request_timeout`): a seek that never finished leaves its partitions held
        # back while the rebalance is over, and the worker alive but silent on them.
        thread: SeekingConsumerThread = self._thread  # type: ignore[assignment]  # made by _new_consumer_thread
        committed = await thread.seek_partitions_to_committed({tp})
        log.warning(
            "%s[%d] was not sought after the rebalance; sought to its commit, %s",
            tp.topic,
            tp.partition,
            committed[tp],
        )
        self._continuity().sought(committed)

    async def on_partitions_revoked(self, revoked: Set[TP]) -> None:
        self._continuity().held_back(revoked)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Set[TP], generation_id: int = 0) -> None:
        self._continuity().held_back(assigned)
        await super().on_partitions_assigned(assigned, generation_id)

    async def _commit_tps(self, tps: Iterable[TP], start_new_transaction: bool) -> bool:
        # Faust's own, with the offsets read inside the app's barrier (see the module doc).
        barrier: Callable[[], AbstractAsyncContextManager[None]] | None = getattr(self.app, "commit_barrier", None)
        if barrier is None:
            commit_offsets = self._filter_committable_offsets(tps)
        else:
            async with barrier():
                commit_offsets = self._filter_committable_offsets(tps)
        if not commit_offsets:
            return False
        try:
            await self._handle_attached(commit_offsets)
        except ProducerSendError as exc:
            await self.crash(exc)
            return False
        acknowledged: Callable[[], None] | None = getattr(self.app, "states_acknowledged", None)
        if acknowledged is not None:
            # What the barrier wrote is acknowledged before what must not reach the
            # changelog without it is written; `_commit_offsets` flushes that in turn.
            await self.app.producer.flush()
            acknowledged()
        return await self._commit_offsets(commit_offsets, start_new_transaction=start_new_transaction)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109 (Faust's signature)
        contiguous: Callable[[str], bool] = getattr(self.app, "contiguous", _no_topic)
        continuity = self._continuity()
        rewinding: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if contiguous(tp.topic):
                if tp in rewinding:
                    continue  # fetched again after the seek
                if continuity.awaiting_seek(tp):
                    # Faust seeks a rebalance's partitions before it declares the rebalance
                    # over, and marks the next begun before it revokes anything: a record
                    # of one awaiting its seek between rebalances was never sought.
                    if not self.app.rebalancing:
                        rewinding.add(tp)
                        await self._seek_lost(tp)
                    continue  # fetched again after the seek (the one to come, or that one)
                back = continuity.admit(tp, message.offset)
                if back is not None:
                    log.warning(
                        "%s[%d]: record %d arrived before %d; seeking back to %d",
                        tp.topic,
                        tp.partition,
                        message.offset,
                        back,
                        back,
                    )
                    rewinding.add(tp)
                    await super().seek(tp, back)  # keeps `rewound`: a second hole there is real
                    continue
            yield tp, message


@dataclass(frozen=True)
class _Position:
    topic: str
    partition: int


@dataclass(frozen=True)
class _PartitionOnly:
    message: _Position


@contextmanager
def writing_to_partition(topic: str, partition: int) -> Iterator[None]:
    """Table writes made inside go to `partition`'s store and changelog partition, as if
    made for an event of that partition of `topic`.

    Faust takes the partition of a table write from the event being processed (its
    `current_event`), and refuses a write outside one. The scorer writes its states back
    at commit, outside any event, each to its location's partition (the partition of
    the events that changed it): this stands in for such an event."""
    stand_in = _PartitionOnly(_Position(topic, partition))
    token = _current_event.set(weakref.ref(stand_in))  # type: ignore[arg-type]  # Faust reads .message's topic and partition only
    try:
        yield
    finally:
        _current_event.reset(token)


class AcknowledgingProducer(Producer):
    """Faust's aiokafka producer whose flush waits for the acknowledgement of every
    record sent before it began (records sent meanwhile belong to later commits)."""

    def _unacknowledged(self) -> set[FutureMessage]:
        pending: set[FutureMessage] | None = self.__dict__.get("_pending_sends")
        if pending is None:
            pending = self.__dict__["_pending_sends"] = set()
        return pending

    def send_soon(self, fut: FutureMessage) -> None:
        pending = self._unacknowledged()
        pending.add(fut)
        fut.add_done_callback(pending.discard)
        super().send_soon(fut)

    async def flush(self) -> None:
        owed = list(self._unacknowledged())
        await super().flush()
        if not owed:
            return
        await asyncio.wait(owed)
        failed = [f for f in owed if f.cancelled() or f.exception() is not None]
        if failed:
            first = failed[0]
            why = "cancelled" if first.cancelled() else repr(first.exception())
            raise UnacknowledgedWrite(
                f"{len(failed)} record(s) to {first.message.channel.get_topic_name()} were not acknowledged: {why}"
            )


class SeekingTransport(Transport):
    Consumer = SeekingConsumer
    Producer = AcknowledgingProducer


class ScoringApp(faust.App):
    """A Faust app on the seeking transport (kafka:// only). `contiguous`: which topics'
    records are delivered with no hole (see `Continuity`); `group_status`: what keeps the
    worker out of its consumer group."""

    contiguous: Callable[[str], bool] = staticmethod(_no_topic)
    # Entered before a commit reads its offsets (see the module doc); None: none.
    commit_barrier: Callable[[], AbstractAsyncContextManager[None]] | None = None
    # Called once what the barrier wrote is acknowledged, before the offsets are
    # committed: table writes that must not reach a changelog ahead of it; None: none.
    states_acknowledged: Callable[[], None] | None = None

    @cached_property
    def group_status(self) -> GroupStatus:
        """Why the worker is not in its consumer group yet (see membership.py)."""
        return GroupStatus()

    def _new_transport(self) -> TransportT:
        return SeekingTransport(self.conf.broker_consumer, self)
