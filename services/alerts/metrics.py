"""Prometheus metrics for the alert service, on a registry of its own."""

import time
from collections.abc import Callable

from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.alerts import AlertKind
from schemas.risk import LevelName
from schemas.topics import Topics
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.routing import Channel
from services.consumer_lag import ConsumerLagCollector, lag_by_role


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts = Counter(
            "caresignal_alerts",
            "Alerts recorded, by kind (escalation, de-escalation, reminder) and new level.",
            ["kind", "level"],
            registry=self.registry,
        )
        self.changes = Counter(
            "caresignal_alerts_risk_changes",
            "Risk changes consumed, by result (alerted, history: from a backfill, not sent; duplicate, "
            "dead_letter, store_error).",
            ["result"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "caresignal_alerts_notifications",
            "Delivery attempts and decisions not to send, by channel and outcome "
            "(delivered, retry, endpoint-gone, refused, dead; muted, endpoint-gone).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "caresignal_alerts_delivery_latency_seconds",
            "From the risk change reaching Kafka to the receiver's acceptance, by channel.",
            ["channel"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 72 * 3600),
            registry=self.registry,
        )
        self.unrouted = Counter(
            "caresignal_alerts_unrouted_locations",
            "Locations in a risk change with no directory record (nobody could be told).",
            registry=self.registry,
        )
        self.without_contact = Counter(
            "caresignal_alerts_recipients_without_contact",
            "Recipients of an alert with no contact point that wants its level.",
            registry=self.registry,
        )
        self.contact_reloads = Counter(
            "caresignal_alerts_contact_reloads",
            "Contact file reloads, by result (ok, error).",
            ["result"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "caresignal_alerts_outbox_depth", "Deliveries waiting to be sent or retried.", registry=self.registry
        )
        self.dead_letters = Gauge(
            "caresignal_alerts_dead_letters",
            "Deliveries given up (window over, or refused for good); see GET /v1/alerts?state=...",
            registry=self.registry,
        )
        self.oldest_pending_age = Gauge(
            "caresignal_alerts_outbox_oldest_age_seconds",
            "How long the longest-waiting delivery has waited since it was planned (0: none waiting). "
            "A receiver that is down shows here long before the latency histogram, which only counts "
            "deliveries that arrived.",
            registry=self.registry,
        )
        self.consumer_ready = Gauge(
            "caresignal_alerts_consumer_ready",
            "1 when the directory is loaded and risk changes flow.",
            registry=self.registry,
        )
        self.consumer_lag = ConsumerLagCollector(
            "caresignal_alerts_consumer_lag",
            "Risk changes on this instance's assigned partitions not yet consumed, by topic role (risk_changes).",
        )
        self.registry.register(self.consumer_lag)
        for kind in AlertKind:
            for level in LevelName:
                self.alerts.labels(kind.value, level.value)
        for channel in Channel:
            for outcome in DeliveryOutcome:
                if outcome is not DeliveryOutcome.pending:
                    self.notifications.labels(channel.value, outcome.value)
            self.latency.labels(channel.value)

    def track_store(
        self,
        outbox_depth: Callable[[], int],
        dead: Callable[[], int],
        oldest_pending: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Read from the database at scrape time: the outbox is the truth, not a counter.
        self.outbox_depth.set_function(outbox_depth)
        self.dead_letters.set_function(dead)
        self.oldest_pending_age.set_function(lambda: pending_age(clock(), oldest_pending()))

    def report_consumer_lag(self, consumer: KafkaConsumer, topics: Topics) -> None:
        """From the consumer's thread, after a poll (kafka-python's consumer is not
        thread-safe, so the scrape reads this snapshot, not the consumer)."""
        assigned = consumer.assignment()
        # After a poll every assigned partition has a position: no request to the broker.
        positions = {tp: consumer.position(tp, timeout_ms=1000) for tp in assigned}
        highwaters = {tp: consumer.highwater(tp) for tp in assigned}
        lags = lag_by_role(assigned, highwaters, positions, {topics.risk_changes: "risk_changes"})
        self.consumer_lag.source = lambda: lags


def pending_age(now: float, oldest_created_at: float | None) -> float:
    return 0.0 if oldest_created_at is None else max(0.0, now - oldest_created_at)
