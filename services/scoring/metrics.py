"""Prometheus metrics for the scoring worker, on a registry of its own."""

from collections.abc import Mapping

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.risk import Level
from schemas.topics import Topics
from services.consumer_lag import ConsumerLagCollector, lag_by_role


class ScoringMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "caresignal_scoring_events",
            "Events processed, by type and status (applied, duplicate, late, expired).",
            ["event_type", "status"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "caresignal_scoring_processing_seconds",
            "Wall time to score one event, state load to state write.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )
        self.record_latency_seconds = Histogram(
            "caresignal_scoring_record_latency_seconds",
            "From an event record's timestamp (set when ingest produced it) to the end of its "
            "scoring: the scorer's share of end-to-end latency, with the time the record waited "
            "in Kafka (as Kafka Streams' record-e2e-latency).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.write_back_seconds = Histogram(
            "caresignal_scoring_write_back_seconds",
            "Wall time a commit holds the agent to take the changed states (encoded and written after it) and write the peer rows back.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5),
            registry=self.registry,
        )
        self.written_back = Counter(
            "caresignal_scoring_written_back",
            "Records written back to a table at commit (one per changed location or peer row), by table.",
            ["table"],
            registry=self.registry,
        )
        for table in ("location-state", "peer-sums"):
            # At 0 from the start, not from the first commit: a scrape between the start and
            # the first commit found no series (and a test read it as missing).
            self.written_back.labels(table)
        self.level_changes = Counter(
            "caresignal_scoring_level_changes",
            "Level changes published, by scope, new level and direction.",
            ["scope", "new_level", "direction"],
            registry=self.registry,
        )
        self.locations = Gauge(
            "caresignal_scoring_locations",
            "Locations held by this worker, by current level.",
            ["level"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "caresignal_scoring_dead_letters",
            "Messages sent to the dead-letter topic, by source topic and reason.",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.late_events = Counter(
            "caresignal_scoring_late_events",
            "Events behind the watermark: 'late' are still counted, 'expired' (beyond retention) are ignored.",
            ["kind"],
            registry=self.registry,
        )
        self.rerouted = Counter(
            "caresignal_scoring_rerouted_records",
            "Records found on another partition than their key's (murmur2) and sent on to the right one.",
            ["topic"],
            registry=self.registry,
        )
        self.reused_event_ids = Counter(
            "caresignal_scoring_reused_event_ids",
            "Events whose id (from the same source) was already applied with other content: dead-lettered.",
            ["event_type"],
            registry=self.registry,
        )
        self.time_signals = Counter(
            "caresignal_scoring_time_signals",
            "Time signals: 'sent' by this worker's scheduler, 'received' from the event topic.",
            ["kind"],
            registry=self.registry,
        )
        self.consumer_lag = ConsumerLagCollector(
            "caresignal_scoring_consumer_lag",
            "Records on this worker's assigned partitions not yet processed, by topic role "
            "(events, locations, risk_changes).",
        )
        self.registry.register(self.consumer_lag)
        for level in Level:
            self.locations.labels(level.name)
        # Counted for every event: the labelled child looked up once (labels() validates
        # and locks at each call).
        self._events_by: dict[tuple[str, str], Counter] = {}

    def count_event(self, event_type: str, status: str) -> None:
        child = self._events_by.get((event_type, status))
        if child is None:
            child = self._events_by[(event_type, status)] = self.events.labels(event_type, status)
        child.inc()

    def track_consumer_lag(self, app: faust.App, topics: Topics) -> None:
        roles = {topics.events: "events", topics.locations: "locations", topics.risk_changes: "risk_changes"}
        self.consumer_lag.source = lambda: faust_consumer_lag(app, roles)


def faust_consumer_lag(app: faust.App, roles: Mapping[str, str]) -> dict[str, int]:
    """From faust's monitor: the end offsets its fetches saw, the offsets its agents took."""
    monitor = app.monitor
    positions = {tp: offset + 1 for tp, offset in monitor.tp_read_offsets.items()}
    # A partition no record was taken from since the start: from its committed offset.
    for tp, committed in monitor.tp_committed_offsets.items():
        positions.setdefault(tp, committed)
    return lag_by_role(app.consumer.assignment(), monitor.tp_end_offsets, positions, roles)
