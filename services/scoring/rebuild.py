"""`caresignal scorer --replay` at the engine's speed: the event topic's history scored by
the pure replay of the scorer, its results written where the worker keeps them.

The worker re-reading a year of history through Faust scores it one record at a time,
with a stream, an ack, a commit barrier and a changelog write per commit around every
event: a national year took hours. Here a plain consumer reads the history (the event
topic up to its end offsets when the replay started), and the replay of the scorer
(`services/evaluation/replay.py`: the same model, stream clocks, tick schedule and peer
sums as the worker) scores it record by record in the order the partitions were
fetched, as the worker interleaves them. Every change it decides is published again,
with the id it had the first time, marked `backfill` (a decision about the past). Then
its results go to the worker's changelogs, as the worker's own writes would have left
them: each location's state, the peer rows, each partition's clock, and the directory;
and the consumer group's offsets are committed at the history's end. The worker started
next restores its tables from those changelogs and goes on from there, live.

Order, for a crash: changes, then changelog records, all acknowledged, then the offsets.
Until the offsets are committed the group has none, and `--replay` again starts over.
"""

import heapq
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from schemas.clock import TIME_SIGNAL_KEY, TimeSignal
from schemas.directory import Location
from schemas.events import EventParser
from schemas.risk import LevelChange
from schemas.topics import Topics, dead_letter_headers, validation_problems
from services.broker.settings import KafkaSettings
from services.scoring.model import LocationState
from services.scoring.organisation import OrganisationState, roll_up
from services.scoring.peer_rows import row_partition
from services.scoring.peers import PeerSums
from services.scoring.policy import Policy
from services.scoring.routing import PARTITIONS, REROUTED_FROM_HEADER, partition_of
from services.scoring.settings import ScoringSettings
from services.scoring.state_codec import encode_state
from services.scoring.tables import (
    DIRECTORY_TABLE,
    ORGANISATION_TABLE,
    PARTITION_CLOCKS_TABLE,
    PEER_SUMS_TABLE,
    STATE_TABLE,
    changelog_topic,
    clock_record,
    table_key,
)
from services.scoring.ticks import TickSchedule

POLL_RECORDS = 5_000
# Polls of a second with nothing fetched before a partition short of its end is an error.
IDLE_POLLS = 30


class RebuildError(RuntimeError):
    """The history could not be read, or a result not written: nothing was committed."""


class ReplayEngine(Protocol):
    """What the rebuild asks of the scorer's replay (`services.evaluation.replay.Replay`)."""

    states: dict[str, LocationState]
    level_changes: list[LevelChange]
    peer_sums: PeerSums
    schedule: TickSchedule

    def score(self, parsed: Any, partition: int, *, backfill: bool = False) -> str: ...

    def signal(self, partition: int, at: datetime) -> None: ...


@dataclass
class RebuildReport:
    events: int = 0
    signals: int = 0
    changes: int = 0
    locations: int = 0
    directory: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    rerouted: int = 0
    organisation_changes: int = 0
    seconds: float = 0.0
    directory_ends: dict[int, int] = field(default_factory=dict)
    # The location changes decided, for the organisation roll-up (across every share).
    decided: list[LevelChange] = field(default_factory=list)

    def merge(self, other: "RebuildReport") -> None:
        """Another share's counts added (the directory is every share's: counted once)."""
        self.events += other.events
        self.signals += other.signals
        self.changes += other.changes
        self.locations += other.locations
        self.rerouted += other.rerouted
        self.decided += other.decided
        for reason, n in other.dead_letters.items():
            self.dead_letters[reason] = self.dead_letters.get(reason, 0) + n
        self.directory, self.directory_ends = other.directory, other.directory_ends

    def summary(self) -> str:
        dead = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dead_letters.items())) or "none"
        rate = self.events / self.seconds if self.seconds else 0.0
        return (
            f"{self.events:,} events and {self.signals:,} time signals scored in {self.seconds:.1f} s "
            f"({rate:,.0f} events/s); {self.changes:,} level changes and {self.organisation_changes:,} "
            "organisation changes published again; "
            f"{self.locations:,} location states and {self.directory:,} directory records written; "
            f"dead-lettered: {dead}; re-routed: {self.rerouted}"
        )


EngineFactory = Callable[[Mapping[str, Location]], ReplayEngine]


@dataclass
class Rebuild:
    """One `--replay`: `run(history)` with the event topic's end offsets when it started."""

    settings: ScoringSettings
    kafka: KafkaSettings
    policy: Policy
    engine_for: EngineFactory
    timeout_s: float = 60.0

    def run(self, history: Mapping[int, int], processes: int = 1) -> RebuildReport:
        """Score the history, then commit the group's offsets at its end. `processes`
        share the partitions: each scores, publishes and writes its own, seeing the peer
        rows of its own partitions only (as the national evaluation splits them)."""
        started = time.monotonic()
        client = {"bootstrap_servers": self.kafka.bootstrap_servers, **self.kafka.security.kafka_python()}
        try:
            self._declare_changelogs(client)
        except KafkaError as exc:
            raise RebuildError(f"the replay could not create the tables' changelogs: {exc}") from exc
        shares = [frozenset(p for p in history if p % processes == n) for n in range(processes)]
        if processes == 1:
            reports = [self._share(client, shares[0]).run(history)]
        else:
            reports = self._run_apart(client, history, shares)
        report = RebuildReport()
        for part in reports:
            report.merge(part)
        changes_end = self._roll_up(client, report)
        topics = self.kafka.topics
        ends = {topics.events: history, topics.locations: report.directory_ends, topics.risk_changes: changes_end}
        self._commit(client, ends)
        report.seconds = time.monotonic() - started
        return report

    def _roll_up(self, client: Mapping[str, Any], report: RebuildReport) -> dict[int, int]:
        """The organisation roll-up of every location change the replay decided, in the
        order they were decided (ties by location, then sequence: the same whatever order
        the shares finished in), its changes published and each organisation's state
        written where the worker's roll-up keeps it. The change topic's end offsets after
        it: the worker's roll-up goes on from there, not over the history again."""
        states: dict[str, OrganisationState] = {}
        published: list[LevelChange] = []
        decided = sorted(report.decided, key=lambda c: (c.decided_at, c.location_id or "", c.sequence))
        for change in decided:
            if change.scope != "location" or change.provider_id is None:
                continue
            state, org_change = roll_up(states.get(change.provider_id), change, self.policy)
            states[change.provider_id] = state
            if org_change is not None:
                published.append(org_change)
        report.organisation_changes = len(published)
        changelog = changelog_topic(self.settings.app_id, ORGANISATION_TABLE)
        topics = self.kafka.topics
        try:
            producer = KafkaProducer(
                acks="all", enable_idempotence=True, linger_ms=20, client_id="caresignal-rebuild", **client
            )
            try:
                pending = [
                    producer.send(topics.risk_changes, key=c.key.encode(), value=c.model_dump_json().encode())
                    for c in published
                ]
                pending += [
                    producer.send(
                        changelog, key=table_key(p), value=s.model_dump_json().encode(), partition=partition_of(p)
                    )
                    for p, s in states.items()
                ]
                producer.flush(timeout=self.timeout_s)
                for future in pending:
                    future.get(timeout=self.timeout_s)
            finally:
                producer.close(timeout=10)
            return _end_offsets(client, topics.risk_changes)
        except KafkaError as exc:
            raise RebuildError(
                f"the replay could not write the organisation roll-up: {exc}; nothing was committed"
            ) from exc

    def _share(self, client: Mapping[str, Any], partitions: frozenset[int]) -> "Share":
        return Share(self.settings.app_id, self.kafka.topics, client, self.engine_for, partitions, self.timeout_s)

    def _run_apart(
        self, client: Mapping[str, Any], history: Mapping[int, int], shares: list[frozenset[int]]
    ) -> list[RebuildReport]:
        """Each share in a process of its own (forked: the engine factory need not pickle)."""
        context = multiprocessing.get_context("fork")
        results: Any = context.Queue()

        def run_share(partitions: frozenset[int]) -> None:
            try:
                results.put(self._share(client, partitions).run(history))
            except RebuildError as exc:
                results.put(str(exc))

        children = [context.Process(target=run_share, args=(share,), daemon=True) for share in shares]
        for child in children:
            child.start()
        answers = [results.get() for _ in children]
        for child in children:
            child.join()
        failed = [a for a in answers if isinstance(a, str)]
        failed += [f"a replay process exited with status {c.exitcode}" for c in children if c.exitcode]
        if failed:
            raise RebuildError("; ".join(failed))
        return answers

    def _declare_changelogs(self, client: Mapping[str, Any]) -> None:
        """The tables' changelog topics, compacted, as Faust declares them."""
        admin = KafkaAdminClient(client_id="caresignal-rebuild", **client)
        try:
            for table in (STATE_TABLE, PEER_SUMS_TABLE, PARTITION_CLOCKS_TABLE, DIRECTORY_TABLE, ORGANISATION_TABLE):
                topic = NewTopic(
                    changelog_topic(self.settings.app_id, table),
                    num_partitions=PARTITIONS,
                    replication_factor=self.kafka.topic_replication,
                    topic_configs={"cleanup.policy": "compact"},
                )
                with suppress(TopicAlreadyExistsError):
                    admin.create_topics([topic])
        finally:
            admin.close()

    def _commit(self, client: Mapping[str, Any], ends: Mapping[str, Mapping[int, int]]) -> None:
        """The group's offsets at the history's end: the worker starts from there."""
        consumer = KafkaConsumer(group_id=self.settings.app_id, enable_auto_commit=False, **client)
        try:
            offsets = {
                TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1)
                for topic, by_partition in ends.items()
                for p, offset in by_partition.items()
                if offset > 0
            }
            if offsets:
                consumer.commit(offsets)
        except KafkaError as exc:
            raise RebuildError(
                f"the replay's results are written but its offsets could not be committed: {exc}"
            ) from exc
        finally:
            consumer.close()


@dataclass
class Share:
    """The partitions one process replays: read, scored and written; nothing committed."""

    app_id: str
    topics: Topics
    client: Mapping[str, Any]
    engine_for: EngineFactory
    partitions: frozenset[int]
    timeout_s: float
    report: RebuildReport = field(default_factory=RebuildReport)

    def run(self, history: Mapping[int, int]) -> RebuildReport:
        self.parser = EventParser(future_tolerance=timedelta(days=3650))
        producer = KafkaProducer(
            acks="all", enable_idempotence=True, linger_ms=20, client_id="caresignal-rebuild", **self.client
        )
        try:
            directory = self._read_directory()
            engine = self.engine_for({k: loc for k, (_, loc, _) in directory.items()})
            until = {p: offset for p, offset in history.items() if p in self.partitions}
            pending = self._score_history(engine, until, producer)
            pending += self._publish_changes(engine, producer)
            pending += self._write_changelogs(engine, directory, producer)
            producer.flush(timeout=self.timeout_s)
            for future in pending:
                future.get(timeout=self.timeout_s)
        except KafkaError as exc:
            raise RebuildError(f"the replay could not read or write Kafka: {exc}; nothing was committed") from exc
        finally:
            producer.close(timeout=10)
        return self.report

    # --- reading ---------------------------------------------------------------------

    def _read_directory(self) -> dict[str, tuple[bytes, Location, int]]:
        """The directory's latest valid record per location (what the worker's directory
        table would hold) and the partition it was read from; the topic's end offsets go
        to the report."""
        found: dict[str, tuple[bytes, Location, int]] = {}
        for record in _read(self.client, self.topics.locations, None, self.report.directory_ends):
            if record.value is None or record.key is None:
                found.pop(record.key.decode(errors="replace") if record.key else "", None)
                continue
            try:
                location = Location.model_validate_json(record.value)
            except ValidationError:
                continue  # dead-lettered by the worker's directory agent when it first read it
            if record.key.decode(errors="replace") == location.location_id:
                found[location.location_id] = (record.value, location, record.partition)
        self.report.directory = len(found)
        return found

    def _score_history(self, engine: ReplayEngine, history: Mapping[int, int], producer: KafkaProducer) -> list[Any]:
        """Every record before the history's end, as the worker's `_score_event` takes it."""
        pending: list[Any] = []
        for record in _read(self.client, self.topics.events, history, {}):
            if record.key == TIME_SIGNAL_KEY:
                pending += self._signal(engine, record, producer)
                continue
            if record.key is not None and (right := partition_of(record.key)) != record.partition:
                pending.append(self._misplaced(record, right, producer))
                continue
            try:
                parsed = self.parser.parse_json(record.value)
            except ValidationError as exc:
                pending.append(self._dead_letter(producer, record, "invalid_event", validation_problems(exc)))
                continue
            if record.key is None or record.key.decode(errors="replace") != parsed.subject:
                detail = "record key is not the event's subject (location ID)"
                pending.append(self._dead_letter(producer, record, "key_mismatch", detail))
                continue
            status = engine.score(parsed, record.partition, backfill=True)
            self.report.events += 1
            if status == "reused_id":
                detail = f"event id {parsed.id!r} of source {parsed.source!r} was already applied with other content"
                pending.append(self._dead_letter(producer, record, "reused_event_id", detail))
        return pending

    def _signal(self, engine: ReplayEngine, record: ConsumerRecord, producer: KafkaProducer) -> list[Any]:
        try:
            signal = TimeSignal.model_validate_json(record.value)
        except ValidationError as exc:
            return [self._dead_letter(producer, record, "invalid_time_signal", validation_problems(exc))]
        engine.signal(record.partition, signal.time)
        self.report.signals += 1
        return []

    def _misplaced(self, record: ConsumerRecord, right: int, producer: KafkaProducer) -> Any:
        """As the worker's `_misplaced`: sent on once to its key's partition, where the
        worker scores it after the history (a copy already there is a duplicate)."""
        headers = list(record.headers or [])
        if any(k == REROUTED_FROM_HEADER for k, _ in headers):
            detail = f"re-routed once already and still on partition {record.partition}, not {right}"
            return self._dead_letter(producer, record, "wrong_partition", detail)
        where = f"{record.topic}/{record.partition}/{record.offset}"
        self.report.rerouted += 1
        headers.append((REROUTED_FROM_HEADER, where.encode()))
        return producer.send(self.topics.events, key=record.key, value=record.value, partition=right, headers=headers)

    def _dead_letter(self, producer: KafkaProducer, record: ConsumerRecord, reason: str, detail: str) -> Any:
        self.report.dead_letters[reason] = self.report.dead_letters.get(reason, 0) + 1
        headers = dead_letter_headers(reason, detail, record.topic, record.partition, record.offset)
        return producer.send(self.topics.dead_letter, key=record.key, value=record.value, headers=headers)

    # --- writing ---------------------------------------------------------------------

    def _publish_changes(self, engine: ReplayEngine, producer: KafkaProducer) -> list[Any]:
        self.report.changes = len(engine.level_changes)
        self.report.decided = list(engine.level_changes)
        return [
            producer.send(self.topics.risk_changes, key=c.key.encode(), value=c.model_dump_json().encode())
            for c in engine.level_changes
        ]

    def _write_changelogs(
        self, engine: ReplayEngine, directory: Mapping[str, tuple[bytes, Location, int]], producer: KafkaProducer
    ) -> list[Any]:
        """This share's table records, each to its partition of the changelog, as the
        worker scoring these partitions would have written them."""
        records: list[tuple[str, str, bytes, int]] = []
        for location_id, state in engine.states.items():
            records.append((STATE_TABLE, location_id, encode_state(state), partition_of(location_id)))
        self.report.locations = len(engine.states)
        for key, raw in engine.peer_sums.table().items():
            if raw is not None and row_partition(key) in self.partitions:
                records.append((PEER_SUMS_TABLE, key, raw, row_partition(key)))
        for partition in sorted(self.partitions):
            clock = engine.schedule.clock(partition)
            if clock is not None:
                records.append((PARTITION_CLOCKS_TABLE, str(partition), clock_record(clock), partition))
        for location_id, (raw, _, partition) in directory.items():
            if partition in self.partitions:
                records.append((DIRECTORY_TABLE, location_id, raw, partition))
        return [
            producer.send(changelog_topic(self.app_id, table), key=table_key(key), value=value, partition=partition)
            for table, key, value, partition in records
        ]


def _read(
    client: Mapping[str, Any], topic: str, until: Mapping[int, int] | None, ends: dict[int, int]
) -> Iterator[ConsumerRecord]:
    """A topic's records from the first up to `until` (per partition; None: the end
    offsets now, stored in `ends`), the partitions merged by the records' timestamps
    (ties by partition, then offset): the order they arrived in, which a live worker
    scored them in, whatever order the broker hands them over in now. So the result
    does not depend on fetch timing, and peer sums see the partitions side by side
    rather than one partition's year before the next's."""
    stop = dict(until) if until is not None else _end_offsets(client, topic)
    ends.update(stop)
    readers = [_PartitionReader(client, TopicPartition(topic, p), end) for p, end in sorted(stop.items()) if end > 0]
    try:
        yield from _merge(readers)
    finally:
        for reader in readers:
            reader.close()


def _end_offsets(client: Mapping[str, Any], topic: str) -> dict[int, int]:
    probe = KafkaConsumer(enable_auto_commit=False, group_id=None, **client)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(probe.partitions_for_topic(topic) or ())]
        return {tp.partition: offset for tp, offset in probe.end_offsets(partitions).items()}
    finally:
        probe.close()


def _merge(readers: list["_PartitionReader"]) -> Iterator[ConsumerRecord]:
    """The earliest of the partitions' next records, each partition in its own order."""
    heap = [(r.timestamp, r.partition, n) for n, r in enumerate(readers) if r.peek() is not None]
    heapq.heapify(heap)
    while heap:
        _, _, n = heap[0]
        reader = readers[n]
        yield reader.take()
        if reader.peek() is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (reader.timestamp, reader.partition, n))


class _PartitionReader:
    """One partition's records up to `stop`, fetched a batch at a time by a consumer of
    its own (so no partition's records pile up while another's are awaited)."""

    def __init__(self, client: Mapping[str, Any], tp: TopicPartition, stop: int) -> None:
        self.tp, self.stop = tp, stop
        self.consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, max_poll_records=POLL_RECORDS, **client)
        self.consumer.assign([tp])
        self.consumer.seek_to_beginning(tp)
        self.buffer: deque[ConsumerRecord] = deque()
        self.done = False

    def peek(self) -> ConsumerRecord | None:
        if not self.buffer and not self.done:
            self._fetch()
        return self.buffer[0] if self.buffer else None

    def take(self) -> ConsumerRecord:
        return self.buffer.popleft()

    @property
    def timestamp(self) -> int:
        """The next record's (after `peek`)."""
        return int(self.buffer[0].timestamp)

    @property
    def partition(self) -> int:
        return int(self.tp.partition)

    def _fetch(self) -> None:
        for _ in range(IDLE_POLLS):
            records = self.consumer.poll(timeout_ms=1000).get(self.tp, [])
            self.buffer.extend(r for r in records if r.offset < self.stop)
            if self.consumer.position(self.tp) >= self.stop:
                self.done = True
            if self.buffer or self.done:
                return
        at = self.consumer.position(self.tp)
        raise RebuildError(
            f"{self.tp.topic}[{self.tp.partition}]: no records for {IDLE_POLLS} s at {at} of {self.stop}"
        )

    def close(self) -> None:
        self.consumer.close()
