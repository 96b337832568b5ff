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

import time
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
from schemas.topics import dead_letter_headers, validation_problems
from services.broker.settings import KafkaSettings
from services.scoring.model import LocationState
from services.scoring.peers import PeerSums
from services.scoring.routing import PARTITIONS, REROUTED_FROM_HEADER, partition_of
from services.scoring.settings import ScoringSettings
from services.scoring.state_codec import encode_state
from services.scoring.tables import (
    DIRECTORY_TABLE,
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
    seconds: float = 0.0

    def summary(self) -> str:
        dead = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dead_letters.items())) or "none"
        rate = self.events / self.seconds if self.seconds else 0.0
        return (
            f"{self.events:,} events and {self.signals:,} time signals scored in {self.seconds:.1f} s "
            f"({rate:,.0f} events/s); {self.changes:,} level changes published again; "
            f"{self.locations:,} location states and {self.directory:,} directory records written; "
            f"dead-lettered: {dead}; re-routed: {self.rerouted}"
        )


@dataclass
class Rebuild:
    """One `--replay`: `run(history)` with the event topic's end offsets when it started."""

    settings: ScoringSettings
    kafka: KafkaSettings
    engine_for: Callable[[Mapping[str, Location]], ReplayEngine]
    timeout_s: float = 60.0
    report: RebuildReport = field(default_factory=RebuildReport)

    def __post_init__(self) -> None:
        self.topics = self.kafka.topics
        self.parser = EventParser(future_tolerance=timedelta(days=3650))

    def run(self, history: Mapping[int, int]) -> RebuildReport:
        started = time.monotonic()
        client = {"bootstrap_servers": self.kafka.bootstrap_servers, **self.kafka.security.kafka_python()}
        producer = KafkaProducer(
            acks="all", enable_idempotence=True, linger_ms=20, client_id="caresignal-rebuild", **client
        )
        try:
            directory, directory_ends = self._read_directory(client)
            engine: ReplayEngine = self.engine_for({k: loc for k, (_, loc, _) in directory.items()})
            pending = self._score_history(client, engine, history, producer)
            self._declare_changelogs(client)
            pending += self._publish_changes(engine, producer)
            pending += self._write_changelogs(engine, directory, producer)
            producer.flush(timeout=self.timeout_s)
            for future in pending:
                future.get(timeout=self.timeout_s)
        except KafkaError as exc:
            raise RebuildError(f"the replay could not read or write Kafka: {exc}; nothing was committed") from exc
        finally:
            producer.close(timeout=10)
        self._commit(client, {self.topics.events: history, self.topics.locations: directory_ends})
        self.report.seconds = time.monotonic() - started
        return self.report

    # --- reading ---------------------------------------------------------------------

    def _read_directory(
        self, client: Mapping[str, Any]
    ) -> tuple[dict[str, tuple[bytes, Location, int]], dict[int, int]]:
        """The directory's latest valid record per location (what the worker's directory
        table would hold), the partition it was read from, and the topic's end offsets."""
        found: dict[str, tuple[bytes, Location, int]] = {}
        ends: dict[int, int] = {}
        for record in _read(client, self.topics.locations, None, ends):
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
        return found, ends

    def _score_history(
        self, client: Mapping[str, Any], engine: ReplayEngine, history: Mapping[int, int], producer: KafkaProducer
    ) -> list[Any]:
        """Every record before the history's end, as the worker's `_score_event` takes it."""
        pending: list[Any] = []
        for record in _read(client, self.topics.events, history, {}):
            if record.key == TIME_SIGNAL_KEY:
                self._signal(engine, record, producer, pending)
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

    def _signal(
        self, engine: ReplayEngine, record: ConsumerRecord, producer: KafkaProducer, pending: list[Any]
    ) -> None:
        try:
            signal = TimeSignal.model_validate_json(record.value)
        except ValidationError as exc:
            pending.append(self._dead_letter(producer, record, "invalid_time_signal", validation_problems(exc)))
            return
        engine.signal(record.partition, signal.time)
        self.report.signals += 1

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
        return [
            producer.send(self.topics.risk_changes, key=c.key.encode(), value=c.model_dump_json().encode())
            for c in engine.level_changes
        ]

    def _declare_changelogs(self, client: Mapping[str, Any]) -> None:
        """The tables' changelog topics, compacted, as Faust declares them."""
        admin = KafkaAdminClient(client_id="caresignal-rebuild", **client)
        try:
            for table in (STATE_TABLE, PEER_SUMS_TABLE, PARTITION_CLOCKS_TABLE, DIRECTORY_TABLE):
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

    def _write_changelogs(
        self, engine: ReplayEngine, directory: Mapping[str, tuple[bytes, Location, int]], producer: KafkaProducer
    ) -> list[Any]:
        app_id = self.settings.app_id
        records: list[tuple[str, str, bytes, int]] = []
        for location_id, state in engine.states.items():
            records.append((STATE_TABLE, location_id, encode_state(state), partition_of(location_id)))
        self.report.locations = len(engine.states)
        for key, raw in engine.peer_sums.table().items():
            if raw is not None:
                records.append((PEER_SUMS_TABLE, key, raw, int(key.rsplit("|", 1)[1])))
        for partition in range(PARTITIONS):
            clock = engine.schedule.clock(partition)
            if clock is not None:
                records.append((PARTITION_CLOCKS_TABLE, str(partition), clock_record(clock), partition))
        for location_id, (raw, _, partition) in directory.items():
            records.append((DIRECTORY_TABLE, location_id, raw, partition))
        return [
            producer.send(changelog_topic(app_id, table), key=table_key(key), value=value, partition=partition)
            for table, key, value, partition in records
        ]

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


def _read(
    client: Mapping[str, Any], topic: str, until: Mapping[int, int] | None, ends: dict[int, int]
) -> Iterator[ConsumerRecord]:
    """A topic's records from the first, partition by partition as the broker hands them
    over, up to `until` (per partition; None: the end offsets now, stored in `ends`)."""
    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, max_poll_records=POLL_RECORDS, **client)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        stop = (
            dict(until)
            if until is not None
            else {tp.partition: o for tp, o in consumer.end_offsets(partitions).items()}
        )
        ends.update(stop)
        wanted = [tp for tp in partitions if stop.get(tp.partition, 0) > 0]
        if not wanted:
            return
        consumer.assign(wanted)
        consumer.seek_to_beginning(*wanted)
        open_ = set(wanted)
        idle = 0
        while open_:
            batch = consumer.poll(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= stop[tp.partition]:
                        break
                    yield record
            for tp in [tp for tp in open_ if consumer.position(tp) >= stop[tp.partition]]:
                open_.discard(tp)
                consumer.pause(tp)
            idle = 0 if batch else idle + 1
            if idle >= IDLE_POLLS:
                where = ", ".join(f"{tp.partition} at {consumer.position(tp)} of {stop[tp.partition]}" for tp in open_)
                raise RebuildError(f"{topic}: no records for {IDLE_POLLS} s before the end (partitions {where})")
    finally:
        consumer.close()
