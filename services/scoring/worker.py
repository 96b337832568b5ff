"""The Faust worker: a thin shell that feeds the pure risk model.

Per-location state lives in a table backed by its changelog (RocksDB locally), the
directory's locations in a co-partitioned table, peer sums in a global table. The
stateful agent runs with concurrency 1, so a location's events are applied one at a
time in partition order.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import faust
from faust.types import EventT
from faust.web import Request, Response, View
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from schemas.directory import Location
from schemas.events import EventParser
from schemas.risk import Level, LevelChange
from schemas.topics import SPECS, Topics, dead_letter_headers
from services.broker.settings import KafkaSettings
from services.scoring.metrics import ScoringMetrics
from services.scoring.model import LocationState, Outcome, PeerStats, PeerUpdate, assess, tick
from services.scoring.organisation import OrganisationState, roll_up
from services.scoring.policy import Policy
from services.scoring.settings import ScoringSettings

log = logging.getLogger(__name__)

PARTITIONS = SPECS["events"].partitions
REPARTITION_NAME = "changes-by-provider"


def partition_of(key: str, partitions: int = PARTITIONS) -> int:
    """The partition the producers' default (murmur2) partitioner gives a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class LevelIndex:
    """Every local location's current level: the risk board and the per-level gauge."""

    metrics: ScoringMetrics
    levels: dict[str, Level] = field(default_factory=dict)
    loaded: bool = False

    def set(self, location_id: str, level: Level) -> None:
        old = self.levels.get(location_id)
        if old == level:
            return
        if old is not None:
            self.metrics.locations.labels(old.name).dec()
        self.levels[location_id] = level
        self.metrics.locations.labels(level.name).inc()


class PublishedLedger:
    """The latest sequence published per location or organisation, read from the
    risk-change topic itself.

    The topic is the truth about what was published: after a crash the worker replays
    events whose changes may already be on it (acknowledged, but the state recording
    them not yet written), and checks here before publishing one again.
    """

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._latest: dict[str, int] = {}
        self._loaded = False
        self._lock = asyncio.Lock()

    @staticmethod
    def _split(change_id: str) -> tuple[str, int]:
        subject, _, seq = change_id.rpartition(":")
        return subject, int(seq)

    def _read_topic(self) -> dict[str, int]:
        consumer = KafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None)
        latest: dict[str, int] = {}
        try:
            partitions = [
                TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or [])
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        try:
                            subject, seq = self._split(json.loads(record.value)["change_id"])
                        except (ValueError, KeyError, TypeError):
                            continue  # not ours to judge here; the roll-up dead-letters it
                        latest[subject] = max(seq, latest.get(subject, 0))
        finally:
            consumer.close()
        return latest

    async def load(self) -> None:
        async with self._lock:
            if not self._loaded:
                loop = asyncio.get_running_loop()
                self._latest = await loop.run_in_executor(None, self._read_topic)
                self._loaded = True
                log.info("published ledger: %d subjects read from %s", len(self._latest), self._topic)

    def already_published(self, change_id: str) -> bool:
        subject, seq = self._split(change_id)
        return self._latest.get(subject, 0) >= seq

    def record(self, change_id: str) -> None:
        subject, seq = self._split(change_id)
        self._latest[subject] = max(seq, self._latest.get(subject, 0))


@dataclass
class Scorer:
    """Builds the Faust app; its agents call the pure model and write the results."""

    settings: ScoringSettings
    kafka: KafkaSettings
    policy: Policy
    metrics: ScoringMetrics = field(default_factory=ScoringMetrics)
    now: Callable[[], float] = time.perf_counter
    # A replay publishes every change again, with the ids it had the first time, so that
    # consumers rebuilding from the topic see the whole history; they drop repeated ids.
    republish: bool = False

    def __post_init__(self) -> None:
        self.topics: Topics = self.kafka.topics
        self.parser = EventParser(future_tolerance=timedelta(days=3650))
        self.index = LevelIndex(self.metrics)
        self.ledger = PublishedLedger(self.kafka.bootstrap_servers, self.topics.risk_changes)
        self.partition_clock: dict[int, datetime] = {}
        self.last_tick: dict[int, datetime] = {}
        self.app = self._build()

    # --- the app -------------------------------------------------------------------------

    def _build(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            broker=f"kafka://{self.kafka.bootstrap_servers}",
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
            table_standby_replicas=0,
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        events_topic = app.topic(self.topics.events, **raw)
        locations_topic = app.topic(self.topics.locations, **raw)
        self.changes_topic = app.topic(self.topics.risk_changes, **raw)
        self.dead_letter_topic = app.topic(self.topics.dead_letter, **raw)
        # faust picks table serializers from the types: bytes values are stored raw (the
        # JSON that pydantic writes), str keys as JSON.
        tables: dict[str, Any] = {"partitions": PARTITIONS, "key_type": str, "value_type": bytes}
        self.states = app.Table("location-state", default=None, **tables)
        self.locations = app.Table("directory-locations", default=None, **tables)
        self.peers = app.GlobalTable("peer-sums", default=None, **tables)
        self.organisations = app.Table("organisation-state", default=None, **tables)

        app.agent(events_topic, name="score", concurrency=1)(self._score)
        app.agent(locations_topic, name="directory", concurrency=1)(self._directory)
        app.agent(self.changes_topic, name="organisations", concurrency=1)(self._organisations)
        self._views(app)
        return app

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
                await self.dead_letter(event, "invalid_location", _problems(exc))
                continue
            if event.key is not None and event.key.decode(errors="replace") != record.location_id:
                await self.dead_letter(event, "key_mismatch", "record key is not the location_id")
                continue
            self.locations[record.location_id] = event.value

    def _peer_key(self, rule_id: str, service_type: str, partition: int) -> str:
        return f"{rule_id}|{service_type}|{partition}"

    def _peer_view(self, location: Location | None) -> dict[tuple[str, str], PeerStats]:
        if location is None:
            return {}
        view = {}
        kind = location.service_type.value
        for rule in self.policy.peers:
            n, total, total_sq = 0, 0.0, 0.0
            for partition in range(PARTITIONS):
                raw = self.peers.get(self._peer_key(rule.id, kind, partition))
                if raw:
                    part = json.loads(raw)
                    n, total, total_sq = n + part[0], total + part[1], total_sq + part[2]
            view[(rule.id, kind)] = PeerStats(n, total, total_sq)
        return view

    def _apply_peer_updates(self, updates: list[PeerUpdate], partition: int) -> None:
        for update in updates:
            for sign, contribution in ((-1, update.old), (1, update.new)):
                if contribution is None:
                    continue
                kind, rate = contribution
                key = self._peer_key(update.rule_id, kind, partition)
                raw = self.peers.get(key)
                n, total, total_sq = json.loads(raw) if raw else (0, 0.0, 0.0)
                self.peers[key] = json.dumps([n + sign, total + sign * rate, total_sq + sign * rate * rate]).encode()

    def _location(self, location_id: str) -> Location | None:
        raw = self.locations.get(location_id)
        return Location.model_validate_json(raw) if raw else None

    def _ensure_index(self) -> None:
        if self.index.loaded:
            return
        for key, raw in self.states.items():
            if raw:
                state = LocationState.model_validate_json(raw)
                self.index.set(key, state.current.level)
        self.index.loaded = True

    async def _write(self, location_id: str, outcome: Outcome, partition: int) -> None:
        if outcome.change is not None:
            # Acknowledged before the state is written: a crash in between replays the
            # event and publishes the same change (same change_id) again; it is never lost.
            await self._publish(outcome.change)
        self.states[location_id] = outcome.state.model_dump_json().encode()
        self._apply_peer_updates(outcome.peer_updates, partition)
        self.index.set(location_id, outcome.state.current.level)

    async def _publish(self, change: LevelChange) -> None:
        if not self.republish:
            await self.ledger.load()
        if not self.republish and self.ledger.already_published(change.change_id):
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
            started = self.now()
            self._ensure_index()
            try:
                parsed = self.parser.parse_json(event.value)
            except ValidationError as exc:
                await self.dead_letter(event, "invalid_event", _problems(exc))
                continue
            if event.key is None or event.key.decode(errors="replace") != parsed.subject:
                await self.dead_letter(event, "key_mismatch", "record key is not the event's subject (location ID)")
                continue
            partition = event.message.partition
            raw = self.states.get(parsed.subject)
            state = LocationState.model_validate_json(raw) if raw else None
            location = self._location(parsed.subject)
            outcome = assess(state, location, parsed, self.policy, self._peer_view(location))
            self.metrics.events.labels(parsed.short_type, outcome.status).inc()
            if outcome.status in ("late", "expired"):
                self.metrics.late_events.labels(outcome.status).inc()
            if outcome.status != "duplicate" and outcome.status != "expired":
                await self._write(parsed.subject, outcome, partition)
            await self._maybe_tick(partition, outcome.state.clock)
            self.metrics.processing_seconds.observe(self.now() - started)

    async def _maybe_tick(self, partition: int, clock: datetime | None) -> None:
        """Re-evaluate this partition's elevated locations as its event time moves on."""
        if clock is None:
            return
        previous = self.partition_clock.get(partition)
        if previous is None or clock > previous:
            self.partition_clock[partition] = clock
        now = self.partition_clock[partition]
        last = self.last_tick.get(partition)
        if last is None:
            self.last_tick[partition] = now
            return
        if now - last < timedelta(hours=self.settings.tick_hours):
            return
        self.last_tick[partition] = now
        elevated = [k for k, level in self.index.levels.items() if level > Level.none and partition_of(k) == partition]
        for location_id in elevated:
            raw = self.states.get(location_id)
            if not raw:
                continue
            location = self._location(location_id)
            outcome = tick(
                LocationState.model_validate_json(raw), location, now, self.policy, self._peer_view(location)
            )
            if outcome.status == "applied":
                await self._write(location_id, outcome, partition)

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
                await self.dead_letter(event, "invalid_level_change", _problems(exc))
                continue
            raw = self.organisations.get(event.key.decode())
            state = OrganisationState.model_validate_json(raw) if raw else None
            new_state, org_change = roll_up(state, change, self.policy)
            if org_change is not None:
                await self._publish(org_change)
            self.organisations[event.key.decode()] = new_state.model_dump_json().encode()

    # --- web views --------------------------------------------------------------------------

    def _views(self, app: faust.App) -> None:
        scorer = self

        @app.page("/v1/locations/{location_id}/risk")
        class LocationRisk(View):
            # Routed to the worker that holds the location's partition.
            # faust's stub types the routed method without URL parameters.
            @app.table_route(table=self.states, match_info="location_id")  # type: ignore[arg-type]
            async def get(self, request: Request, location_id: str) -> Response:
                raw = scorer.states.get(location_id)
                if not raw:
                    return self.json({"detail": f"no events scored for location {location_id}"}, status=404)
                return self.json(risk_view(LocationState.model_validate_json(raw), scorer.policy))

        @app.page("/v1/directory/locations/{location_id}")
        class DirectoryRecord(View):
            # What the scorer knows of a location: its rates and roll-up depend on it.
            @app.table_route(table=self.locations, match_info="location_id")  # type: ignore[arg-type]
            async def get(self, request: Request, location_id: str) -> Response:
                raw = scorer.locations.get(location_id)
                if not raw:
                    return self.json({"detail": f"no directory record for location {location_id}"}, status=404)
                return self.json(json.loads(raw))

        @app.page("/v1/locations")
        class RiskBoard(View):
            async def get(self, request: Request) -> Response:
                scorer._ensure_index()
                wanted = request.query.get("level")
                if wanted is not None and wanted not in Level.__members__:
                    return self.json({"detail": f"level must be one of {list(Level.__members__)}"}, status=422)
                rows = [
                    {"location_id": k, "level": v.name}
                    for k, v in sorted(scorer.index.levels.items(), key=lambda kv: (-kv[1], kv[0]))
                    if wanted is None or v.name == wanted
                ]
                return self.json({"locations": rows, "count": len(rows), "scope": "this worker's partitions"})

        @app.page("/metrics")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                return self.bytes(
                    generate_latest(scorer.metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0]
                )

        @app.page("/healthz")
        class Health(View):
            async def get(self, request: Request) -> Response:
                return self.json({"status": "ok"})

        @app.page("/readyz")
        class Ready(View):
            async def get(self, request: Request) -> Response:
                recovery = getattr(app.tables, "recovery", None)
                recovering = recovery is None or not recovery.completed.is_set()
                if recovering:
                    return self.json({"status": "recovering state from changelogs"}, status=503)
                return self.json({"status": "ready", "policy_version": scorer.policy.version})


def risk_view(state: LocationState, policy: Policy) -> dict[str, Any]:
    current = state.current
    spec = policy.spec(current.level)
    recent = state.evidence[-20:]
    return {
        "location_id": state.location_id,
        "level": current.level.name,
        "since": current.since.isoformat() if current.since else None,
        "score": current.score,
        "evaluated_at": current.at.isoformat() if current.at else None,
        "policy_version": state.policy_version,
        "reasons": [r.model_dump(mode="json") for r in current.reasons],
        "actions": [a.model_dump(mode="json") for a in spec.actions] if spec else [],
        "meaning": spec.meaning if spec else None,
        "recent_evidence": [
            {"event_id": e.id, "source": e.source, "type": e.type, "time": e.time.isoformat()} for e in reversed(recent)
        ],
    }


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )


def run(settings: ScoringSettings, kafka: KafkaSettings, policy: Policy, replay: bool = False) -> None:
    scorer = Scorer(settings, kafka, policy, republish=replay)
    worker = faust.Worker(scorer.app, loglevel=settings.log_level)
    worker.execute_from_commandline()
