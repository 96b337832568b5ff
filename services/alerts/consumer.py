"""Reads risk changes and the directory from Kafka and writes alerts into the outbox.

Runs in a thread of its own (kafka-python is blocking). For each batch: route every
change against the directory as it stands, plan the deliveries, store alerts and
deliveries in one transaction, and only then commit the offsets. A crash anywhere in
between replays the batch; the deterministic alert ids make the replay a no-op.

A change from loading history is stored without deliveries; between batches, the
subjects whose backfill has settled are told their current level once (`current_level.py`).
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from schemas.directory import Authority, Location, Placement
from schemas.risk import Level, LevelChange
from schemas.topics import Topics, dead_letter_headers
from services.alerts.contacts import ContactFileWatcher
from services.alerts.current_level import CurrentLevelNotices
from services.alerts.metrics import AlertMetrics
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.risk_change_group import RiskChangeGroup
from services.alerts.routing import (
    Directory,
    alert_id_for,
    endpoints_gone,
    kind_of,
    muted_authorities,
    plan_deliveries,
    route,
    subject_locations,
    unrouted_locations,
)
from services.alerts.store import AlertStore, NewAlert
from services.broker.connection_check import require_connection
from services.broker.security import PLAINTEXT, KafkaSecurity
from services.broker.settings import heartbeat_interval_s

log = logging.getLogger("caresignal.alerts.consumer")


class DirectoryTopicMissing(LookupError):
    pass


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())


def apply_directory_record(directory: Directory, topics: Topics, topic: str, key: str, value: bytes | None) -> None:
    """Fold one compacted-topic record into the directory (None is a tombstone)."""
    if topic == topics.locations:
        if value is None:
            directory.remove_location(key)
        else:
            directory.put_location(Location.model_validate_json(value))
    elif topic == topics.placements:
        if value is None:
            directory.remove_placement(key)
        else:
            directory.put_placement(Placement.model_validate_json(value))
    elif topic == topics.authorities:
        if value is None:
            directory.authority_names.pop(key, None)
        else:
            authority = Authority.model_validate_json(value)
            directory.authority_names[authority.ons_code] = authority.name


@dataclass
class ConsumerConfig:
    bootstrap_servers: str
    topics: Topics
    group_id: str
    contacts_poll_s: float
    max_batch: int = 200
    security: KafkaSecurity = field(default=PLAINTEXT)
    session_timeout_s: float = 45.0


class ChangeConsumer:
    def __init__(
        self,
        config: ConsumerConfig,
        store: AlertStore,
        contacts: ContactFileWatcher,
        directory: Directory,
        metrics: AlertMetrics,
        on_new_deliveries: Callable[[], None],
        clock: Callable[[], float] = time.time,
        current_level: CurrentLevelNotices | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.contacts = contacts
        self.directory = directory
        self.metrics = metrics
        self.on_new_deliveries = on_new_deliveries
        self.clock = clock
        # Set once the directory is loaded; what else keeps it from reading: `group`.
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.group: RiskChangeGroup | None = None
        self._last_contacts_check = 0.0
        self.current_level = current_level
        self._last_settle_check = 0.0

    # --- contacts --------------------------------------------------------------------

    def refresh_contacts(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_contacts_check < self.config.contacts_poll_s:
            return
        self._last_contacts_check = now
        before = self.contacts.last_error
        if self.contacts.refresh():
            self.metrics.contact_reloads.labels("ok").inc()
            log.info("contact points loaded (version %s)", self.contacts.book.version)
        elif self.contacts.last_error and self.contacts.last_error != before:
            self.metrics.contact_reloads.labels("error").inc()
            log.error("%s", self.contacts.last_error)

    # --- directory -------------------------------------------------------------------

    def _directory_consumer(self) -> KafkaConsumer:
        topics = self.config.topics
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="caresignal-alerts-directory",
            **self.config.security.kafka_python(),
        )
        partitions = []
        for topic in (topics.locations, topics.placements, topics.authorities):
            found = consumer.partitions_for_topic(topic)
            if not found:
                raise DirectoryTopicMissing(f"directory topic {topic} does not exist (run `caresignal topics create`)")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return consumer

    def _apply_directory(self, records: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, batch in records.items():
            for record in batch:
                key = (record.key or b"").decode(errors="replace")
                try:
                    apply_directory_record(self.directory, self.config.topics, tp.topic, key, record.value)
                except ValidationError as exc:
                    # Ingest validated it; the scorer dead-letters bad locations. Skip loudly.
                    log.error("ignored invalid directory record %s@%s: %s", tp, record.offset, _problems(exc))

    def _catch_up_directory(self, consumer: KafkaConsumer, stop: threading.Event) -> None:
        assigned = list(consumer.assignment())
        end = consumer.end_offsets(assigned)
        while not stop.is_set() and any(consumer.position(tp) < end[tp] for tp in assigned):
            self._apply_directory(consumer.poll(timeout_ms=500, max_records=5000))

    # --- risk changes ----------------------------------------------------------------

    def _dead_letter(self, producer: KafkaProducer, record: ConsumerRecord, reason: str, detail: str) -> None:
        headers = dead_letter_headers(reason, detail, record.topic, record.partition, record.offset)
        producer.send(self.config.topics.dead_letter, key=record.key, value=record.value, headers=headers).get(
            timeout=30
        )
        self.metrics.changes.labels("dead_letter").inc()
        log.warning("dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)

    def build_alert(
        self, change: LevelChange, published_at: float, mutes: set[tuple[str, str]], disabled: frozenset[str]
    ) -> NewAlert:
        recipients = route(change, self.directory)
        missing = unrouted_locations(change, self.directory)
        if missing:
            self.metrics.unrouted.inc(len(missing))
            log.error(
                "change %s: no directory record for %s; their authorities cannot be told", change.change_id, missing
            )
        kind = kind_of(change)
        alert_id = alert_id_for(change.change_id)
        plans = []
        # From loading history: recorded, sent to nobody; the current level is told once
        # the backfill settles.
        if not change.backfill:
            muted = muted_authorities(recipients, subject_locations(change), mutes)
            plans = plan_deliveries(
                alert_id,
                kind,
                Level[change.old_level.value],
                Level[change.new_level.value],
                recipients,
                self.contacts.book,
                muted,
                disabled,
            )
        told = {p.authority for p in plans}
        without = [r.authority for r in recipients if r.authority not in told]
        if without and not change.backfill:
            self.metrics.without_contact.inc(len(without))
            log.warning("alert %s: no contact point wants this level for %s", alert_id, without)
        location = self.directory.locations.get(change.location_id or "")
        return NewAlert(
            alert_id=alert_id,
            kind=kind,
            change=change,
            location_name=location.name if location else None,
            recipients=recipients,
            deliveries=plans,
            published_at=published_at,
        )

    def handle_batch(self, producer: KafkaProducer, records: list[ConsumerRecord]) -> int:
        """Store the alerts of one batch; returns how many were new."""
        now = self.clock()
        items: list[NewAlert] = []
        # Read once per batch, not once per change: these tables are small, and every
        # query is a turn at SQLite's lock that the delivery worker also wants.
        mutes = self.store.live_mutes(now)
        disabled = endpoints_gone(self.store.disabled_endpoints(), self.contacts.book)
        for record in records:
            try:
                change = LevelChange.model_validate_json(record.value or b"")
            except ValidationError as exc:
                self._dead_letter(producer, record, "invalid_level_change", _problems(exc))
                continue
            items.append(self.build_alert(change, record.timestamp / 1000.0, mutes, disabled))
        # A change replayed in the same batch (or twice on the topic) is one alert.
        unique = list({item.alert_id: item for item in reversed(items)}.values())[::-1]
        result = self.store.record(unique, now)
        created = set(result.created)
        for item in unique:
            if item.alert_id in created:
                self.metrics.alerts.labels(item.kind.value, item.change.new_level.value).inc()
                self.metrics.changes.labels("history" if item.change.backfill else "alerted").inc()
                for plan in item.deliveries:
                    if plan.state in (DeliveryOutcome.muted, DeliveryOutcome.endpoint_gone):
                        self.metrics.notifications.labels(plan.channel.value, plan.state.value).inc()
        self.metrics.changes.labels("duplicate").inc(len(items) - len(created))
        return len(created)

    def settle_backfills(self, force: bool = False) -> None:
        """Tell the current level of subjects whose backfill has settled (throttled)."""
        notices = self.current_level
        if notices is None:
            return
        now = time.monotonic()
        # Often enough that the notice follows the settle time closely, rarely enough to
        # leave the database to the batches.
        if not force and now - self._last_settle_check < min(max(notices.settle_s / 4, 0.2), 5.0):
            return
        self._last_settle_check = now
        try:
            if notices.run_once(self.directory):
                self.on_new_deliveries()
        except DBAPIError as exc:  # the next check tries again; nothing is lost
            log.error("cannot decide settled backfills yet: %s", exc)

    def _store_batch(self, producer: KafkaProducer, records: list[ConsumerRecord], stop: threading.Event) -> bool:
        """Store a batch, waiting out a database outage; False if asked to stop first."""
        delay = 0.5
        while not stop.is_set():
            try:
                if self.handle_batch(producer, records):
                    self.on_new_deliveries()
                return True
            except DBAPIError as exc:
                self.metrics.changes.labels("store_error").inc()
                log.error("cannot store alerts (retrying in %.1fs, offsets not committed): %s", delay, exc)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
        return False

    def not_ready_because(self) -> str | None:
        """Why risk changes are not being read now, for /readyz; None when they are."""
        if self.failed is not None:
            return f"consumer stopped: {type(self.failed).__name__}"
        if not self.ready.is_set():
            return "consumer: loading the directory"
        group = self.group
        return group.problem if group is not None else None

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop`; a Kafka outage is waited out, reported by readiness."""
        delay = 1.0
        while not stop.is_set():
            try:
                self._run(stop)
                return
            except (KafkaError, DirectoryTopicMissing) as exc:
                self.failed = exc
                self.ready.clear()
                self.metrics.consumer_ready.set(0)
                log.error("risk-change consumer: %s; retrying in %.0fs", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception as exc:  # a bug: keep the API up (it serves the audit) and say so
                self.failed = exc
                self.ready.clear()
                self.metrics.consumer_ready.set(0)
                log.exception("the risk-change consumer stopped")
                raise

    def _run(self, stop: threading.Event) -> None:
        self.refresh_contacts(force=True)
        # A refused login is named in the log and readiness now, not taken for a missing topic.
        require_connection(self.config.bootstrap_servers, self.config.security)
        directory_consumer = self._directory_consumer()
        self._catch_up_directory(directory_consumer, stop)
        log.info(
            "directory loaded: %d locations, %d locations with placements",
            len(self.directory.locations),
            len(self.directory.placements),
        )
        producer = KafkaProducer(
            bootstrap_servers=self.config.bootstrap_servers,
            acks="all",
            client_id="caresignal-alerts-dlq",
            **self.config.security.kafka_python(),
        )
        # Subscribed by `RiskChangeGroup` once the topic exists (risk_change_group.py says why).
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers,
            group_id=self.config.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="caresignal-alerts",
            max_poll_records=self.config.max_batch,
            # The group's leader rebalances when its metadata of the topic changes (the
            # topic deleted, partitions added); every 5 s rather than kafka-python's 5 min.
            metadata_max_age_ms=5000,
            session_timeout_ms=int(self.config.session_timeout_s * 1000),
            heartbeat_interval_ms=int(heartbeat_interval_s(self.config.session_timeout_s) * 1000),
            **self.config.security.kafka_python(),
        )
        group = RiskChangeGroup(consumer, self.config.topics.risk_changes, self.config.group_id)
        try:
            self.group = group
            self.failed = None
            self.ready.set()
            while not stop.is_set():
                self.refresh_contacts()
                # Directory first, so a placement made before a change routes it.
                self._apply_directory(directory_consumer.poll(timeout_ms=0, max_records=5000))
                self.settle_backfills()
                group.step()
                self.metrics.consumer_ready.set(0 if self.not_ready_because() else 1)
                if not group.subscribed:
                    stop.wait(0.25)
                    continue
                polled = consumer.poll(timeout_ms=250)
                self.metrics.report_consumer_lag(consumer, self.config.topics)
                records = [r for batch in polled.values() for r in batch]
                if not records:
                    continue
                self._apply_directory(directory_consumer.poll(timeout_ms=0, max_records=5000))
                if not self._store_batch(producer, records, stop):
                    break
                try:
                    # Only now: the alerts of every record up to here are durably stored.
                    consumer.commit()
                except CommitFailedError as exc:
                    # The group moved on (a rebalance while the database was slow): the
                    # new owner replays these records and the alert ids make that a no-op.
                    log.warning("offset commit refused, records will be replayed: %s", exc)
        finally:
            consumer.close()
            directory_consumer.close()
            producer.close(timeout=5)
