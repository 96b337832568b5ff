"""`caresignal scorer --replay` scores the history with the pure replay and writes its
results where the worker keeps them; the worker then goes on from there, live."""

import json
import time
from datetime import datetime

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from schemas.clock import TIME_SIGNAL_KEY, TimeSignal
from schemas.risk import LevelChange
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.evaluation.replay import organisation_changes
from services.scoring.tables import PARTITION_CLOCKS_TABLE, STATE_TABLE, changelog_topic, read_clock, table_key
from tests.conftest import consume_all
from tests.service_process import wait_caught_up
from tests.test_scoring_workers import (
    Scenario,
    Worker,
    check_risk_views,
    event_statuses,
    key_of,
    produce_directory,
    produce_events,
    scenario,
    wait_settled,
    workers,
)

pytestmark = pytest.mark.integration

__all__ = ["scenario", "workers"]  # fixtures


def locations_of(changes: list[LevelChange]) -> list[LevelChange]:
    return [c for c in changes if c.scope == "location"]


def test_a_replay_rebuilds_the_states_and_the_worker_goes_on_from_them(
    workers: list[Worker], scenario: Scenario, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    worker = workers[0]
    bootstrap = test_kafka_settings.bootstrap_servers
    produce_directory(bootstrap, topics, scenario.population)
    cut = len(scenario.events) * 7 // 10
    produce_events(bootstrap, topics, scenario.events[:cut])
    worker.start(timeout_s=120)
    wait_settled(bootstrap, worker.app_id, topics)
    live = changes_since(bootstrap, topics.risk_changes, {})
    worker.stop()
    before_replay = end_offsets(bootstrap, topics.risk_changes)
    assert locations_of(live), "the first part of the world decided nothing"

    # A time signal at the end of the history: its partition's clock must survive the replay.
    signal_at = max(e["time"] for e in scenario.events[:cut])
    produce_signal(bootstrap, topics, partition=2, at=signal_at)

    replay_started = time.monotonic()
    worker.start("--replay", timeout_s=240)
    wait_settled(bootstrap, worker.app_id, topics)
    replay_s = time.monotonic() - replay_started
    replayed = changes_since(bootstrap, topics.risk_changes, before_replay)
    before_rest = end_offsets(bootstrap, topics.risk_changes)
    # The same decisions as live (ids, reasons, times), now about the past.
    assert sorted(key_of(c) for c in locations_of(replayed)) == sorted(key_of(c) for c in locations_of(live))
    assert all(c.backfill for c in locations_of(replayed))
    assert {c.change_id for c in locations_of(replayed)} == {c.change_id for c in locations_of(live)}
    # The organisation roll-up of those changes in the order they were decided, not in
    # the order the worker's roll-up happens to read them from the change topic again.
    organisations = [c for c in replayed if c.scope == "organisation"]
    in_order = sorted(locations_of(live), key=lambda c: (c.decided_at, c.location_id or "", c.sequence))
    want_organisations = organisation_changes(in_order, scenario.policy)
    assert want_organisations, "no organisation change: the roll-up would be untested"
    assert sorted((c.provider_id, c.sequence, c.new_level.value, c.decided_at) for c in organisations) == sorted(
        (o.subject, o.sequence, o.new.name, o.time) for o in want_organisations
    )
    assert all(c.backfill for c in organisations)
    last_sequence = {c.provider_id: c.sequence for c in sorted(organisations, key=lambda c: c.sequence)}
    summary = next(line for line in worker.log_tail(1_000_000).splitlines() if "events and" in line)
    assert f"{cut:,} events and 1 time signals scored" in summary, summary
    # The worker scored none of the history again: it started at the history's end.
    assert event_statuses(worker).get("applied", 0.0) == 0.0
    state_keys = {r.key for r in all_records(bootstrap, changelog_topic(worker.app_id, STATE_TABLE))}
    assert {json.loads(k) for k in state_keys} == {e["subject"] for e in scenario.events[:cut]}
    clocks = all_records(bootstrap, changelog_topic(worker.app_id, PARTITION_CLOCKS_TABLE))
    assert any(r.key == table_key("2") and read_clock(r.value) >= datetime.fromisoformat(signal_at) for r in clocks)

    # The rest of the world, live: the oracle's changes that the first part had not
    # decided, from the states the replay wrote.
    produce_events(bootstrap, topics, scenario.events[cut:])
    wait_settled(bootstrap, worker.app_id, topics)
    after_all = changes_since(bootstrap, topics.risk_changes, before_rest)
    after = locations_of(after_all)
    # The roll-up goes on from the states the replay wrote: no sequence is used twice.
    for change in after_all:
        if change.scope == "organisation":
            assert change.sequence > last_sequence.get(change.provider_id, 0), change
    decided = {c.change_id for c in live}
    want = [c for c in scenario.expected if c.change_id not in decided]
    assert want, "the rest of the world decides nothing: the test would prove nothing"
    assert sorted(key_of(c) for c in after) == sorted(key_of(c) for c in want)
    assert not any(c.backfill for c in after)
    check_risk_views([worker], scenario)
    assert 0 < event_statuses(worker).get("applied", 0.0) <= len(scenario.events) - cut
    print(f"\nreplay of {cut} events: {replay_s:.1f} s to settle; {summary}")

    # The whole world again, its partitions shared by two processes: the same decisions
    # (no peer rule here, so no process misses another's peer rows), the same states.
    worker.stop()
    before_second = end_offsets(bootstrap, topics.risk_changes)
    worker.start("--replay", "--replay-processes", "2", timeout_s=240)
    wait_settled(bootstrap, worker.app_id, topics)
    again = locations_of(changes_since(bootstrap, topics.risk_changes, before_second))
    assert sorted(key_of(c) for c in again) == sorted(key_of(c) for c in scenario.expected)
    assert all(c.backfill for c in again)
    check_risk_views([worker], scenario)


def produce_signal(bootstrap: str, topics: Topics, partition: int, at: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    value = TimeSignal.model_validate({"time": at}).model_dump_json().encode()
    producer.send(topics.events, key=TIME_SIGNAL_KEY, value=value, partition=partition).get(timeout=30)
    producer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def changes_since(bootstrap: str, topic: str, since: dict[int, int]) -> list[LevelChange]:
    """The changes on the topic after the given offsets (read once everything settled)."""
    return [
        LevelChange.model_validate_json(r.value)
        for r in all_records(bootstrap, topic)
        if r.offset >= since.get(r.partition, 0)
    ]


def all_records(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    return consume_all(bootstrap, topic, expect=sum(end_offsets(bootstrap, topic).values()))


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: consumer.committed(tp) for tp in tps}
    finally:
        consumer.close()


def test_a_replay_of_an_empty_topic_starts_the_worker(
    workers: list[Worker], test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    worker = workers[0]
    worker.start("--replay", timeout_s=240)
    assert httpx.get(f"{worker.url}/readyz", timeout=10).status_code == 200
    assert "0 events and 0 time signals scored" in worker.log_tail(1_000_000)
    wait_caught_up(test_kafka_settings.bootstrap_servers, worker.app_id, topics.events)
    assert not any(committed(test_kafka_settings.bootstrap_servers, worker.app_id, topics.events).values())
