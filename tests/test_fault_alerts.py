"""The alert service killed -9 at random points while level changes keep arriving, cycle
after cycle: every delivery the oracle expects (host and placing authorities with a
contact point, for every change) reaches its webhook receiver, none under two delivery
ids. A request in flight at the kill may arrive again under the same id (at least once,
with the Standard Webhooks id for the receiver to drop it)."""

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from services.broker.settings import KafkaSettings
from tests.alert_peers import AUTHORITIES, Peers, make_alerts
from tests.fault_drivers import Paced, change_sender, publish_directory
from tests.faults import Tally, expected_changes, expected_deliveries, make_world, record, scale, wait_for_deliveries

pytestmark = pytest.mark.integration

RATE = 6.0  # level changes per second


@pytest.fixture
def producer(test_kafka_settings: KafkaSettings) -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=test_kafka_settings.bootstrap_servers, acks="all", linger_ms=5)
    try:
        yield p
    finally:
        p.close()


def test_alert_service_killed_repeatedly_under_load_delivers_everything_once(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers, producer: KafkaProducer
) -> None:
    cycles = scale().alerts_kills
    rng = random.Random(cycles)
    world = make_world(seed=12, locations=scale().locations * 2, days=scale().days, per_location_day=0.3)
    changes = list(expected_changes(world, world.events).changes.values())
    topics = test_kafka_settings.topics
    publish_directory(producer, topics, world)
    # A killed instance's partitions come back after 10 s, not the default 45: three kills
    # left ~80 s without deliveries (docs/reliability.md).
    alerts = make_alerts(tmp_path, test_kafka_settings, peers, max_in_flight="4", session_timeout_s="10")
    started = time.monotonic()
    try:
        alerts.start()
        for hook in peers.hooks.values():
            hook.set_delay(0.02)  # requests in flight when the kill comes
        load = Paced(change_sender(producer, topics.risk_changes), changes, RATE).start()
        restarts = []
        for _ in range(cycles):
            time.sleep(rng.uniform(0.5, 3.0))
            assert load.running, f"the changes ran out before every kill (restarts took {restarts} s)"
            alerts.kill()
            killed = time.monotonic()
            alerts.start()
            restarts.append(round(time.monotonic() - killed, 1))
        time.sleep(1.0)
        load.stop()
        wanted = expected_deliveries(world, load.sent, AUTHORITIES)
        audit = wait_for_deliveries(wanted, peers.hooks, timeout_s=120)
    finally:
        alerts.stop()
    record(
        Tally(
            "alerts kill -9",
            cycles,
            0,
            len(load.sent),
            len(wanted),
            len(audit.lost),
            len(audit.duplicated),
            time.monotonic() - started,
            f"{audit.resent} resent under the same webhook id; restarts {min(restarts)}-{max(restarts)} s",
        )
    )
    assert len(wanted) >= 50
    assert audit.lost == [], f"deliveries lost: {audit.lost[:10]}"
    assert audit.duplicated == [], f"one delivery under two webhook ids: {audit.duplicated[:10]}"
    assert audit.extra == [], f"deliveries to authorities the oracle does not tell: {audit.extra[:10]}"
    # Only requests in flight at a kill may come again (max_in_flight each time).
    assert audit.resent <= 4 * cycles
