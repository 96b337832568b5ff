"""Consumer lag per topic role: the pure sum, its gauge, the alert service's reading of a
real consumer's offsets, and a real scorer's backlog."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry, generate_latest

from schemas.examples import example_event
from schemas.topics import Topics
from services.alerts.metrics import AlertMetrics
from services.broker.settings import KafkaSettings
from services.consumer_lag import ConsumerLagCollector, lag_by_role
from services.scoring.metrics import ScoringMetrics
from tests.service_process import ScorerProcess


class TP(NamedTuple):
    topic: str
    partition: int


ROLES = {"p.events": "events", "p.risk-changes": "risk_changes"}


def test_lag_is_summed_per_role_over_assigned_partitions_only() -> None:
    assigned = [TP("p.events", 0), TP("p.events", 1), TP("p.risk-changes", 0)]
    ends = {TP("p.events", 0): 10, TP("p.events", 1): 5, TP("p.risk-changes", 0): 7, TP("p.events", 2): 99}
    positions = {TP("p.events", 0): 4, TP("p.events", 1): 5, TP("p.risk-changes", 0): 2, TP("p.events", 2): 0}
    assert lag_by_role(assigned, ends, positions, ROLES) == {"events": 6, "risk_changes": 5}


def test_unknown_offsets_and_other_topics_count_nothing_and_every_role_is_reported() -> None:
    assigned = [TP("p.events", 0), TP("p.events", 1), TP("p.changelog", 0)]
    ends: dict[TP, int | None] = {TP("p.events", 0): None, TP("p.events", 1): 8, TP("p.changelog", 0): 50}
    positions = {TP("p.events", 1): 9, TP("p.changelog", 0): 0}  # ahead of a stale end: not negative
    assert lag_by_role(assigned, ends, positions, ROLES) == {"events": 0, "risk_changes": 0}


def test_the_collector_reads_its_source_at_scrape_time() -> None:
    registry = CollectorRegistry()
    collector = ConsumerLagCollector("x_consumer_lag", "lag")
    registry.register(collector)
    assert b"x_consumer_lag{" not in generate_latest(registry)
    lags = {"events": 3}
    collector.source = lambda: lags
    assert b'x_consumer_lag{topic="events"} 3.0' in generate_latest(registry)
    lags["events"] = 0
    assert b'x_consumer_lag{topic="events"} 0.0' in generate_latest(registry)


def test_both_services_register_their_lag_gauge() -> None:
    assert b"# TYPE caresignal_scoring_consumer_lag gauge" in generate_latest(ScoringMetrics().registry)
    assert b"# TYPE caresignal_alerts_consumer_lag gauge" in generate_latest(AlertMetrics().registry)


@pytest.mark.integration
def test_the_alert_service_reports_what_its_real_consumer_has_left(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    for i in range(5):
        producer.send(topics.risk_changes, key=b"k", value=str(i).encode()).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topics.risk_changes,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2,
    )
    metrics = AlertMetrics()
    try:
        taken = 0
        for _ in range(60):
            taken += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
            if taken:
                break
        assert taken == 2
        metrics.report_consumer_lag(consumer, topics)
        assert b'caresignal_alerts_consumer_lag{topic="risk_changes"} 3.0' in generate_latest(metrics.registry)
    finally:
        consumer.close()


def scorer_event_lag(url: str) -> float | None:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('caresignal_scoring_consumer_lag{topic="events"} '):
            return float(line.split()[1])
    return None


@pytest.mark.integration
def test_the_scorer_reports_its_backlog_on_the_event_topic_and_it_drains_to_zero(
    test_kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    producer = KafkaProducer(bootstrap_servers=test_kafka_settings.bootstrap_servers, acks="all")
    for i in range(3000):
        location_id = f"1-8{i % 300:08d}"
        event = example_event(
            "missed_visit",
            event_id=f"mv-lag-{i}",
            source="urn:caresignal:source:lag-test",
            location_id=location_id,
            time=now - timedelta(hours=3000 - i),
            data={"outcome": "late", "minutes_late": 10, "time_critical": False},
        )
        producer.send(topics.events, key=location_id.encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()
    scorer = ScorerProcess(topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path)
    try:
        scorer.start()
        seen: list[float] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lag = scorer_event_lag(scorer.url)
            if lag is not None:
                seen.append(lag)
                if lag == 0 and max(seen) > 0:
                    break
            time.sleep(0.1)
        assert seen and max(seen) > 0, f"a backlog of 3000 events was never reported: {seen[:20]}"
        assert seen[-1] == 0, f"the lag did not drain to 0: last values {seen[-10:]}"
        assert max(seen) <= 3000
    finally:
        scorer.stop()
