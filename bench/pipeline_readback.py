"""Reading back what the pipeline wrote: level changes, and each event's record timestamp."""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from schemas.topics import Topics
from services.alerts.routing import alert_id_for

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def to_us(iso: str) -> int:
    return (datetime.fromisoformat(iso) - EPOCH) // US


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed", group_id=None
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + 300
        while any(consumer.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@dataclass
class Changes:
    by_alert: dict[str, tuple[int, int, str]]  # alert id -> (decided_at us, record ms, scope)
    count: dict[str, int]


def read_changes(bootstrap: str, topics: Topics) -> Changes:
    by_alert: dict[str, tuple[int, int, str]] = {}
    count: dict[str, int] = {}
    for record in read_topic(bootstrap, topics.risk_changes):
        change = json.loads(record.value)
        by_alert[alert_id_for(change["change_id"])] = (to_us(change["decided_at"]), record.timestamp, change["scope"])
        count[change["scope"]] = count.get(change["scope"], 0) + 1
    return Changes(by_alert, count)


def event_times(bootstrap: str, topics: Topics) -> dict[int, int]:
    """Event time (us, unique per event) -> its record's CreateTime (ms), first write."""
    out: dict[int, int] = {}
    for record in read_topic(bootstrap, topics.events):
        at = record.value.find(b'"time":"')
        if at < 0:
            continue
        t = to_us(record.value[at + 8 : record.value.index(b'"', at + 8)].decode())
        out[t] = min(out.get(t, record.timestamp), record.timestamp)
    return out
