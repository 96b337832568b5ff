"""One webhook receiver down for a long spell and one always failing, while level changes
arrive: the other receivers get everything without waiting for them; the one that was
down gets each delivery exactly once when it returns; the failing one's deliveries are
dead-lettered when the retry window ends, not before (the window and the back-off are
shortened through the alert service's settings)."""

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from services.broker.settings import KafkaSettings
from tests.alert_peers import AUTHORITIES, HOST, PLACER_A, PLACER_B, THIRD, Peers, make_alerts
from tests.fault_drivers import alert_state, change_sender, publish_directory
from tests.faults import (
    Tally,
    audit_deliveries,
    expected_changes,
    expected_deliveries,
    make_world,
    record,
    scale,
    wait_for_deliveries,
)

pytestmark = pytest.mark.integration

DOWN, FAILING = PLACER_A, PLACER_B
HEALTHY = (HOST, THIRD)


@pytest.fixture
def producer(test_kafka_settings: KafkaSettings) -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=test_kafka_settings.bootstrap_servers, acks="all", linger_ms=5)
    try:
        yield p
    finally:
        p.close()


def test_a_receiver_down_and_one_always_failing_do_not_hold_up_the_others(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers, producer: KafkaProducer
) -> None:
    down_s, window_s = scale().receiver_down_s, scale().retry_window_s
    world = make_world(seed=13, locations=30, days=scale().days, per_location_day=0.3)
    changes = list(expected_changes(world, world.events).changes.values())
    wanted = expected_deliveries(world, changes, AUTHORITIES)
    by = {a: {w for w in wanted if w[0] == a} for a in AUTHORITIES}
    assert all(len(by[a]) >= 5 for a in AUTHORITIES), {a: len(w) for a, w in by.items()}
    publish_directory(producer, test_kafka_settings.topics, world)
    alerts = make_alerts(tmp_path, test_kafka_settings, peers, retry_window_h=str(window_s / 3600))
    started = time.monotonic()
    try:
        alerts.start()
        peers.hooks[DOWN].down()
        peers.hooks[FAILING].set_response(500)
        change_sender(producer, test_kafka_settings.topics.risk_changes)(changes)
        went_down = time.monotonic()

        healthy = {a: peers.hooks[a] for a in HEALTHY}
        # Everything reaches the healthy receivers while the dead one is still down.
        first = wait_for_deliveries(by[HOST] | by[THIRD], healthy, timeout_s=max(down_s, 60))
        assert first.lost == [], f"the healthy receivers waited for the dead one: {first.lost[:10]}"
        assert first.duplicated == [] and first.extra == []
        assert peers.hooks[DOWN].received() == []

        time.sleep(max(0.0, down_s - (time.monotonic() - went_down)))
        peers.hooks[DOWN].up()
        back = wait_for_deliveries(by[DOWN], {DOWN: peers.hooks[DOWN]}, timeout_s=60)
        assert back.lost == [] and back.extra == []
        assert back.duplicated == [] and back.resent == 0, "a delivery arrived twice after the outage"

        # The failing receiver: every delivery retried until its window ends, then dead.
        deadline = time.monotonic() + window_s + 60
        dead: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline and len(dead) < len(by[FAILING]):
            for _, change_id in by[FAILING] - set(dead):
                [delivery] = alert_state(alerts.url, change_id, FAILING)
                if delivery["state"] == "dead":
                    dead[change_id] = delivery
            time.sleep(1.0)
        assert len(dead) == len(by[FAILING]), "deliveries to the failing receiver not dead-lettered"
    finally:
        alerts.stop()
    for delivery in dead.values():
        log = delivery["attempt_log"]
        assert isinstance(log, list) and len(log) >= 2 and log[-1]["outcome"] == "dead"
        created = datetime.fromisoformat(str(delivery["created_at"]))
        given_up = datetime.fromisoformat(log[-1]["at"]) - created
        # At the window's end: not before, and not much after (back-off at most 2 s, polls every 0.2 s).
        assert timedelta(seconds=window_s - 1) <= given_up <= timedelta(seconds=window_s + 15), given_up
    refused = [r for r in peers.hooks[FAILING].requests() if r.status == 500]
    assert peers.hooks[FAILING].received() == [] and len(refused) >= 2 * len(dead)
    total = audit_deliveries(wanted - by[FAILING], {a: peers.hooks[a] for a in (*HEALTHY, DOWN)})
    record(
        Tally(
            "receiver down + failing",
            1,
            0,
            len(changes),
            len(wanted),
            len(total.lost),
            len(total.duplicated),
            time.monotonic() - started,
            f"down {down_s:.0f} s; {len(dead)} dead-lettered after the {window_s:.0f} s window",
        )
    )
    assert total.lost == [] and total.duplicated == []
