"""kill -9 of the scorer at random points under a steady load through ingest, cycle after
cycle: against the oracle (the pure replay of the events sent), no level change is lost,
none is published under a second id, and a change published again is the same change."""

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.fault_drivers import FaultScorer, fault_scorer, ingest_load, put_directory, wait_for_directory
from tests.faults import audit_scored_run, make_world, scale

pytestmark = pytest.mark.integration

RATE = 40.0  # events per second, in batches of 10


@pytest.fixture
def scorer(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[FaultScorer]:
    process = fault_scorer(tmp_path, test_kafka_settings.topic_prefix)
    try:
        yield process
    finally:
        process.stop()


def test_scorer_killed_repeatedly_under_load_loses_and_duplicates_no_change(
    scorer: FaultScorer, test_kafka_settings: KafkaSettings, api_keys: ApiKeyRegistry
) -> None:
    cycles = scale().scorer_kills
    rng = random.Random(cycles)
    world = make_world(seed=11, locations=scale().locations, days=scale().days, per_location_day=0.3)
    started = time.monotonic()
    with TestClient(create_app(IngestSettings(), test_kafka_settings, api_keys)) as ingest:
        put_directory(ingest, world)
        scorer.start()
        wait_for_directory(scorer.url, world.locations)
        load, _ = ingest_load(ingest, world.events, rate=RATE, batch=10)
        restarts: list[float] = []
        for _ in range(cycles):
            time.sleep(rng.uniform(0.5, 4.0))
            assert load.running, f"the world's events ran out before every kill (restarts took {restarts} s)"
            scorer.kill()
            killed = time.monotonic()
            scorer.start()
            restarts.append(round(time.monotonic() - killed, 1))
        time.sleep(1.0)
        load.stop()

    audit_scored_run(
        "scorer kill -9",
        cycles,
        world,
        load.sent,
        test_kafka_settings.bootstrap_servers,
        test_kafka_settings.topics.risk_changes,
        started,
        f"restarts {min(restarts)}-{max(restarts)} s",
    )
