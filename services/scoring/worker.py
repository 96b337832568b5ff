"""The Faust worker: a thin shell that feeds the pure risk model.

Per-location state lives in a table backed by its changelog (RocksDB locally), the
directory's locations in a co-partitioned table, peer sums in a global table. The
stateful agent runs with concurrency 1, so a location's events are applied one at a
time in partition order.
"""

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.types import EventT
from pydantic import ValidationError

from schemas.clock import TIME_SIGNAL_KEY, TimeSignal, is_time_signal
from schemas.directory import Location
from schemas.events import EventParser
from schemas.risk import LevelChange
from schemas.topics import BACKFILL_HEADER, Topics, dead_letter_headers, validation_problems
from services.broker.settings import KafkaSettings, heartbeat_interval_s
from services.scoring.ledger import PublishedLedger
from services.scoring.level_index import LevelIndex
from services.scoring.membership import CompleteAssignor
from services.scoring.metrics import ScoringMetrics
from services.scoring.model import LocationState, Outcome, assess, next_due, tick
from services.scoring.organisation import OrganisationState, roll_up
from services.scoring.peer_rows import WorkerPeerSums, row_partition
from services.scoring.policy import Policy
from services.scoring.routing import PARTITIONS, REROUTED_FROM_HEADER, partition_of
from services.scoring.rules.peer_stats import PeerStats
from services.scoring.settings import ScoringSettings
from services.scoring.state_cache import StateCache, Unwritten
from services.scoring.state_codec import Detached, decode_state, detach, encode_detached
from services.scoring.ticks import TickSchedule
from services.scoring.transport import ScoringApp, writing_to_partition
from services.scoring.views import register_views

log = logging.getLogger(__name__)

REPARTITION_NAME = "changes-by-provider"
# How long the commit's write-back runs before it lets the agent score again.
WRITE_BACK_SLICE_S = 0.005
# Records the write-back leaves in Faust's producer buffer (whose ebb is at 100).
WRITE_BACK_BUFFERED = 50
# The producer's batch per partition: under the broker's default 1 MB message.max.bytes.
WRITE_BACK_BATCH_BYTES = 512 * 1024


class ScoringHalted(RuntimeError):
    """An event was left half applied (its handling failed or was cancelled): the states
    in memory may hold part of it, so nothing more is committed; the worker stops and
    the events after the last commit are scored again when it starts."""


@dataclass
class Scorer:
    """Builds the Faust app; its agents call the pure model and write the results."""

    settings: ScoringSettings
    kafka: KafkaSettings
    policy: Policy
    metrics: ScoringMetrics = field(default_factory=ScoringMetrics)
    now: Callable[[], float] = time.perf_counter
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.topics: Topics = self.kafka.topics
        self.parser = EventParser(future_tolerance=timedelta(days=3650))
        self.index = LevelIndex(self.metrics)
        self.ledger = PublishedLedger(self.kafka.bootstrap_servers, self.topics.risk_changes, self.kafka.security)
        self.ticks = TickSchedule()
        self._planned: set[int] = set()
        self.cache = StateCache(
            lambda raw: decode_state(raw, self.policy), detach, encode_detached, self.settings.state_cache_size
        )
        self.peer_sums = WorkerPeerSums(self.policy, PARTITIONS)
        # Parsed directory records, dropped when the directory agent writes one.
        self._directory_records: dict[str, Location | None] = {}
        self._clocks_written: dict[int, bytes] = {}
        # Each scored partition's clock as of the offsets the commit under way reads:
        # written once the states written back with it are acknowledged.
        self._clocks_due: dict[int, bytes] = {}
        # Event-topic partitions revoked since the last assignment, and those held.
        self._revoked: set[int] = set()
        self._held: set[int] = set()
        # Held while an event is applied; a commit takes it to write the states back.
        self._applying = asyncio.Lock()
        self._halted: str | None = None
        self.app = self._build()
        self.app.commit_barrier = self.settled
        self.app.states_acknowledged = self.write_back_clocks
        self.metrics.track_consumer_lag(self.app, self.topics)

    # --- the app -------------------------------------------------------------------------

    def _build(self) -> ScoringApp:
        s = self.settings
        app = ScoringApp(
            s.app_id,
            broker=f"kafka://{self.kafka.bootstrap_servers}",
            broker_credentials=self.kafka.security.faust_credentials(),
            store=s.store,
            datadir=str(s.data_dir),
            web_enabled=True,
            web_host=s.web_host,
            web_port=s.web_port,
            web_in_thread=False,
            topic_partitions=PARTITIONS,
            topic_replication_factor=self.kafka.topic_replication,
            # At least once, with the change published and acknowledged before the state
            # that records it (see _write) and deterministic change ids. Faust's
            # exactly_once mode was tried: under it the organisation roll-up's
            # repartitioned stream never delivered (faust-streaming 0.15, Kafka 4.1).
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # A commit writes every changed state back at once (hundreds of records of
            # ~5 KB on a national world), and Faust's conductor stops delivering records
            # while its producer buffer holds over 100: with aiokafka's 16 KB batches (a
            # handful of states each) that drain held the agent 1-2 s a commit.
            producer_max_batch_size=WRITE_BACK_BATCH_BYTES,
            broker_session_timeout=s.session_timeout_s,
            # Faust's 3 s default would be half of the broker's 6 s minimum session.
            broker_heartbeat_interval=heartbeat_interval_s(s.session_timeout_s),
            # A worker taking a partition over has its tables already, not a changelog to read.
            table_standby_replicas=s.standby_replicas,
            # A group leader whose metadata lacks a topic assigns nothing (see
            # membership.py), and aiokafka assigns again only when its metadata changes:
            # with the 5-minute default a scorer sat unready that long after a rebalance
            # on a broker slow to list its topics (a clean-clone run's consumer-lag test).
            consumer_metadata_max_age_ms=10_000,
            PartitionAssignor=CompleteAssignor,
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.events_topic = events_topic = app.topic(self.topics.events, **raw)
        # A location's events, and the roll-up's changes, must reach their agents in
        # partition order with none missing (see transport.Continuity).
        app.contiguous = self._contiguous
        # faust-streaming types a signal receiver more narrowly than it calls one.
        app.on_partitions_revoked.connect(self._partitions_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._partitions_assigned)  # type: ignore[arg-type]
        self.locations_topic = locations_topic = app.topic(self.topics.locations, **raw)
        self.changes_topic = app.topic(self.topics.risk_changes, **raw)
        self.dead_letter_topic = app.topic(self.topics.dead_letter, **raw)
        # faust picks table serializers from the types: bytes values are stored raw (the
        # JSON that pydantic writes), str keys as JSON.
        tables: dict[str, Any] = {"partitions": PARTITIONS, "key_type": str, "value_type": bytes}
        self.states = app.Table("location-state", default=None, **tables)
        self.locations = app.Table("directory-locations", default=None, **tables)
        self.peers = app.GlobalTable("peer-sums", default=None, **tables)
        self.organisations = app.Table("organisation-state", default=None, **tables)
        # Per partition of the event topic, the event time its last time signal carried:
        # after a restart, old events are judged against it before the next signal comes.
        self.partition_clocks = app.Table("partition-clocks", default=None, **tables)

        app.agent(events_topic, name="score", concurrency=1)(self._score)
        app.agent(locations_topic, name="directory", concurrency=1)(self._directory)
        app.agent(self.changes_topic, name="organisations", concurrency=1)(self._organisations)
        if s.clock_interval_s > 0:

            async def send_time_signals() -> None:
                await self.send_time_signals()

            # On the leader only: one signal per partition per interval, however many workers.
            app.timer(s.clock_interval_s, on_leader=True)(send_time_signals)
        register_views(app, self)
        return app

    def _contiguous(self, topic: str) -> bool:
        # Neither is compacted and nothing writes them in transactions: an offset missing
        # from a fetch is a record dropped around a seek, not a hole in the log.
        return topic in (self.topics.events, self.topics.risk_changes) or topic.endswith(
            f"-{REPARTITION_NAME}-repartition"
        )

    async def send_time_signals(self) -> None:
        value = TimeSignal(time=datetime.now(UTC)).model_dump_json().encode()
        for partition in range(PARTITIONS):
            await self.events_topic.send(key=TIME_SIGNAL_KEY, value=value, partition=partition)
        self.metrics.time_signals.labels("sent").inc(PARTITIONS)

    # --- dead letters ----------------------------------------------------------------------

    async def dead_letter(self, event: EventT[bytes], reason: str, detail: str) -> None:
        message = event.message
        headers = dead_letter_headers(reason, detail, message.topic, message.partition, message.offset)
        await self.dead_letter_topic.send(key=event.key, value=event.value, headers=headers)
        self.metrics.dead_letters.labels(message.topic, reason).inc()
        log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)

    # --- agents ---------------------------------------------------------------------------

    async def _directory(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                record = Location.model_validate_json(event.value)
            except ValidationError as exc:
                await self.dead_letter(event, "invalid_location", validation_problems(exc))
                continue
            if event.key is not None and event.key.decode(errors="replace") != record.location_id:
                await self.dead_letter(event, "key_mismatch", "record key is not the location_id")
                continue
            self.locations[record.location_id] = event.value
            self._directory_records.pop(record.location_id, None)

    def _peer_view(self, location: Location | None) -> Mapping[tuple[str, str], PeerStats]:
        self.peer_sums.follow(self.peers, self._scored_partitions)
        return self.peer_sums.view(location)

    def _scored_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topics.events}

    def _location(self, location_id: str) -> Location | None:
        if location_id not in self._directory_records:
            raw = self.locations.get(location_id)
            self._directory_records[location_id] = Location.model_validate_json(raw) if raw else None
        return self._directory_records[location_id]

    def ensure_index(self) -> None:
        """Every partition this worker scores is in the level index (see `_ensure_known`)."""
        for partition in sorted(self._scored_partitions()):
            self._ensure_known(partition)

    def _ensure_known(self, partition: int) -> None:
        """Index the levels of a partition's locations and plan the ticks of its raised
        ones when it is first scored here (at start, or taken over in a rebalance).

        One partition at a time, while one of its own records is being handled: Faust's
        RocksDB store answers a table read from the current record's partition only, so
        the directory records of another partition's locations read now would be missing
        (tried in 3fd2d44: every change after a restart lost its provider)."""
        if partition in self._planned:
            return
        for key, raw in self.states.items():
            if partition_of(key) == partition and (state := self.cache.read(key, raw)) is not None:
                self.index.set(key, state.current.level, state.clock)
                self.ticks.plan(partition, key, next_due(state, self._location(key), self.policy))
        self._planned.add(partition)

    async def _partitions_revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        # Faust sends (app, revoked). What they hold is forgotten once the assignment that
        # follows shows which went to another worker (`_partitions_assigned`): a worker
        # given its partitions back (a broker restart expires its session) keeps the states
        # it applied, written back or not, so the events after its last commit, delivered
        # again, are duplicates rather than applied (and counted) a second time.
        revoked: set[Any] = args[0] if args else kwargs.get("revoked", set())
        self._revoked |= {tp.partition for tp in revoked if tp.topic == self.topics.events}

    async def _partitions_assigned(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        # Faust sends (app, assigned). Partitions revoked and not given back: another worker
        # scores them now (from the last commit), and this one reads them afresh from the
        # tables if they come back.
        assigned: set[Any] = args[0] if args else kwargs.get("assigned", set())
        held = {tp.partition for tp in assigned if tp.topic == self.topics.events}
        lost, self._revoked = self._revoked - held, set()
        for partition in lost:
            self.ticks.forget(partition)
            self._planned.discard(partition)
            self._clocks_written.pop(partition, None)
        self.index.forget([key for key in self.index.levels if partition_of(key) in lost])
        self.cache.drop(key for key in self.cache.locations() if partition_of(key) in lost)
        if held != self._held:
            self.peer_sums.reassigned(kept=held & self._held)
        self._held = held
        self._directory_records.clear()

    @asynccontextmanager
    async def settled(self) -> AsyncIterator[None]:
        """No event half applied, and every state the applied events changed on its way
        to the state table (its changelog record acknowledged before the commit, see
        transport.py): the commit reads its offsets inside.

        The agent waits only while the changed states are taken (`StateCache.unwritten`);
        they are encoded and written after it, before the commit's flush, a slice at a
        time so that events keep being scored: encoding them all at once held the agent
        ~0.2 ms per changed location, 0.1-1 s a commit on the national world."""
        async with self._applying:
            if self._halted is not None:
                raise ScoringHalted(self._halted)
            started = self.now()
            unwritten = self.cache.unwritten()
            rows = 0
            for key, raw in self.peer_sums.write_back():
                with writing_to_partition(self.topics.events, row_partition(key)):
                    self.peers[key] = raw
                rows += 1
            self._clocks_due = self._clocks_to_write()
            self.metrics.written_back.labels("peer-sums").inc(rows)
            self.metrics.write_back_seconds.observe(self.now() - started)
            yield
        await self._write_states_back(unwritten)

    async def _write_states_back(self, unwritten: list[Unwritten[Detached]]) -> None:
        # Faust's conductor stops handing records to the agent while its producer buffer
        # holds over 100 (`ProducerBuffer.wait_until_ebb`): hundreds of states put there
        # at once held the agent until they drained. Kept under that, they never do.
        buffer = self.app.producer.buffer
        done: list[tuple[Unwritten[Detached], bytes]] = []
        sliced = self.now()
        for state in unwritten:
            raw = self.cache.encode(state)
            with writing_to_partition(self.topics.events, partition_of(state.location_id)):
                self.states[state.location_id] = raw
            done.append((state, raw))
            while buffer.size > WRITE_BACK_BUFFERED:
                await buffer.flush_atmost(buffer.size - WRITE_BACK_BUFFERED)
                sliced = self.now()
            if self.now() - sliced >= WRITE_BACK_SLICE_S:
                await asyncio.sleep(0)
                sliced = self.now()
        self.cache.written(done)
        self.metrics.written_back.labels("location-state").inc(len(done))

    def state_of(self, location_id: str) -> LocationState | None:
        """The location's current state (None: no event scored), as the agent sees it."""
        return self.cache.get(location_id, lambda: self.states.get(location_id))

    async def _write(self, location_id: str, location: Location | None, outcome: Outcome, partition: int) -> None:
        if outcome.change is not None:
            # Acknowledged before the state is written: a crash in between replays the
            # event and publishes the same change (same change_id) again; it is never lost.
            await self._publish(outcome.change)
        self.cache.changed(location_id, outcome.state)
        self.peer_sums.apply(outcome.peer_updates, partition)
        self.index.set(location_id, outcome.state.current.level, outcome.state.clock)
        self.ticks.plan(partition, location_id, next_due(outcome.state, location, self.policy))

    async def _publish(self, change: LevelChange) -> None:
        await self.ledger.load()
        if self.ledger.already_published(change.change_id):
            log.info("level change %s was published before a restart; not publishing it again", change.change_id)
            return
        delivery = await self.changes_topic.send(key=change.key.encode(), value=change.model_dump_json().encode())
        # Wait for the broker's acknowledgement: the state written next must never
        # record a change that a crash could still lose from the producer's buffer.
        await delivery
        self.ledger.record(change.change_id)
        self.metrics.level_changes.labels(change.scope, change.new_level.value, change.direction).inc()
        log.info(
            "level change %s %s: %s -> %s (%s)",
            change.change_id,
            change.key,
            change.old_level.value,
            change.new_level.value,
            ", ".join(r.rule_id for r in change.reasons),
        )

    async def _score(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            async with self._applying:
                try:
                    await self._score_event(event)
                except BaseException as exc:
                    self._halted = f"{event.message.topic}[{event.message.partition}]@{event.message.offset}: {exc!r}"
                    raise
            produced: float | None = event.message.timestamp
            if produced:
                self.metrics.record_latency_seconds.observe(max(0.0, self.wall() - produced))

    async def _score_event(self, event: EventT[bytes]) -> None:
        started = self.now()
        self._ensure_known(event.message.partition)
        if is_time_signal(event.key):
            await self._time_signal(event)
            return
        if await self._misplaced(event):
            return
        try:
            parsed = self.parser.parse_json(event.value)
        except ValidationError as exc:
            await self.dead_letter(event, "invalid_event", validation_problems(exc))
            return
        if event.key is None or event.key.decode(errors="replace") != parsed.subject:
            await self.dead_letter(event, "key_mismatch", "record key is not the event's subject (location ID)")
            return
        partition = event.message.partition
        state = self.state_of(parsed.subject)
        location = self._location(parsed.subject)
        outcome = assess(
            state,
            location,
            parsed,
            self.policy,
            self._peer_view(location),
            stream_clock=self._stream_clock(partition),
            backfill=_header(event, BACKFILL_HEADER) == b"1",
            consume=True,
        )
        if outcome.status == "duplicate":
            # A redelivered event (after a crash or a rebalance) that the state already
            # holds: the write that recorded it may never have reached the changelog,
            # and this offset is about to be committed. Writing the same state again
            # puts it there first, as Kafka Streams re-writes what it reprocesses;
            # otherwise a worker that later restores the location from the changelog
            # would never see this event.
            self.cache.rewrite(parsed.subject)
        self.metrics.count_event(parsed.short_type, outcome.status)
        if outcome.status in ("late", "expired"):
            self.metrics.late_events.labels(outcome.status).inc()
        if outcome.status == "reused_id":
            self.metrics.reused_event_ids.labels(parsed.short_type).inc()
            await self.dead_letter(
                event,
                "reused_event_id",
                f"event id {parsed.id!r} of source {parsed.source!r} was already applied with other content",
            )
            return
        if outcome.status in ("applied", "late"):
            await self._write(parsed.subject, location, outcome, partition)
        # The partition's clock moves on to the event's own time unless the event changed
        # the state: a redelivered event's location may hold later events already (a
        # write-back cut short by a kill -9 leaves some states newer than the commit), and
        # its clock would tick the locations still behind before their own events come.
        written = outcome.status in ("applied", "late")
        await self._maybe_tick(partition, outcome.state.clock if written else parsed.time)
        self.metrics.processing_seconds.observe(self.now() - started)

    async def _misplaced(self, event: EventT[bytes]) -> bool:
        """Whether the record is on another partition than its key's; if so, it is sent on
        to the right one (or dead-lettered) and not scored here.

        A location's state lives on its key's partition: scored here too, a second, partial
        state would grow beside it. Producers that do not partition like Kafka's Java
        client (murmur2), e.g. kcat by default, put records there.
        """
        if event.key is None:
            return False
        message = event.message
        right = _key_partition(event.key)
        if message.partition == right:
            return False
        where = f"{message.topic}/{message.partition}/{message.offset}"
        if _header(event, REROUTED_FROM_HEADER) is not None:
            await self.dead_letter(
                event,
                "wrong_partition",
                f"re-routed once already and still on partition {message.partition}, "
                f"not {right}: is the topic's partition count {PARTITIONS}?",
            )
            return True
        headers = [*_headers(event), (REROUTED_FROM_HEADER, where.encode())]
        try:
            delivery = await self.events_topic.send(key=event.key, value=event.value, partition=right, headers=headers)
            # Acknowledged before this record's offset can be committed: nothing is lost.
            await delivery
        except KafkaError as exc:
            await self.dead_letter(
                event,
                "wrong_partition",
                f"on partition {message.partition}, belongs on {right}; re-routing failed: {exc}",
            )
            return True
        self.metrics.rerouted.labels(message.topic).inc()
        log.warning("record %s belongs on partition %d (murmur2 of its key): re-routed there", where, right)
        return True

    def _stream_clock(self, partition: int) -> datetime | None:
        """The partition's event time: the latest event or time signal seen on it."""
        clock = self.ticks.clock(partition)
        if clock is None:
            raw = self.partition_clocks.get(str(partition))
            if raw:
                clock = datetime.fromisoformat(json.loads(raw)["clock"])
                self.ticks.clocks[partition] = clock
        return clock

    async def _time_signal(self, event: EventT[bytes]) -> None:
        try:
            signal = TimeSignal.model_validate_json(event.value)
        except ValidationError as exc:
            await self.dead_letter(event, "invalid_time_signal", validation_problems(exc))
            return
        self.metrics.time_signals.labels("received").inc()
        partition = event.message.partition
        self._stream_clock(partition)
        await self._maybe_tick(partition, signal.time)

    def _clocks_to_write(self) -> dict[int, bytes]:
        """Each scored partition's clock as of the commit being made (those not written
        yet): a worker taking the partition over (or this one after a restart) judges
        the events after the commit against it, as this one would have."""
        due = {}
        for partition in sorted(self._scored_partitions()):
            clock = self.ticks.clock(partition)
            raw = json.dumps({"clock": clock.isoformat()}).encode() if clock is not None else None
            if raw is not None and raw != self._clocks_written.get(partition):
                due[partition] = raw
        return due

    def write_back_clocks(self) -> None:
        """The partition clocks of the commit under way, once every state it wrote back is
        acknowledged (transport.py calls it before the offsets are committed). Written
        with the states, a clock could reach the changelog while a state did not (a
        kill -9 as they are sent: Kafka orders records within a partition, not across
        topics); a worker taking the partition over would then tick the locations whose
        states were behind at times their next events, replayed, would have prevented."""
        for partition, raw in self._clocks_due.items():
            with writing_to_partition(self.topics.events, partition):
                self.partition_clocks[str(partition)] = raw
            self._clocks_written[partition] = raw
        self._clocks_due = {}

    async def _maybe_tick(self, partition: int, clock: datetime | None) -> None:
        """The partition's clock moves on: tick every location due by then at its due
        time, in time order (`model.next_due` plans the next one after each write)."""
        self.ticks.advance(partition, clock)
        while (due := self.ticks.next_due(partition)) is not None:
            await self._tick(partition, *due)

    async def _tick(self, partition: int, location_id: str, at: datetime) -> None:
        state = self.state_of(location_id)
        if state is None:
            return
        location = self._location(location_id)
        outcome = tick(state, location, at, self.policy, self._peer_view(location), consume=True)
        if outcome.status == "applied":
            await self._write(location_id, location, outcome, partition)

    async def _organisations(self, stream: faust.StreamT[bytes]) -> None:
        def provider_of(value: bytes) -> bytes:
            try:
                data = json.loads(value)
            except ValueError:
                return b""
            return (data.get("provider_id") or "").encode() if data.get("scope") == "location" else b""

        async for event in stream.group_by(provider_of, name=REPARTITION_NAME).events():
            if not event.key:
                continue  # organisation-level changes, and locations with no directory record
            try:
                change = LevelChange.model_validate_json(event.value)
            except ValidationError as exc:
                await self.dead_letter(event, "invalid_level_change", validation_problems(exc))
                continue
            raw = self.organisations.get(event.key.decode())
            state = OrganisationState.model_validate_json(raw) if raw else None
            new_state, org_change = roll_up(state, change, self.policy)
            if org_change is not None:
                await self._publish(org_change)
            self.organisations[event.key.decode()] = new_state.model_dump_json().encode()


@functools.lru_cache(maxsize=1 << 16)
def _key_partition(key: bytes) -> int:
    # Asked of every event; murmur2 is pure Python, and a worker sees its keys again and again.
    return partition_of(key)


def _headers(event: EventT[bytes]) -> list[tuple[str, bytes]]:
    headers = event.message.headers
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


def _header(event: EventT[bytes], name: str) -> bytes | None:
    # Asked of every event: the headers are scanned, not copied as `_headers` copies them.
    headers = event.message.headers
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if str(key) == name:
            return bytes(value) if value is not None else b""
    return None


def run(settings: ScoringSettings, kafka: KafkaSettings, policy: Policy) -> None:
    """Run the worker (`caresignal scorer`; a `--replay` has rebuilt its tables first, rebuild.py)."""
    scorer = Scorer(settings, kafka, policy)
    worker = faust.Worker(scorer.app, loglevel=settings.log_level)
    worker.execute_from_commandline()
