"""The broker stopped and restarted under load, on a broker of the test's own (its own
ports and data; never the shared one): ingest answers 503 while it is down, a client that
resends until it gets 202 loses nothing, and every accepted event is scored exactly once
in effect: the scorer's level changes and its count of applied events are the oracle's
over the accepted events."""

import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schemas.topics import Topics
from services.broker.local import LocalBroker
from services.broker.settings import KafkaSettings
from services.broker.topics import create_topics
from tests.fault_drivers import (
    FaultIngest,
    fault_scorer,
    ingest_load,
    put_directory,
    scorer_metric,
    wait_for_directory,
)
from tests.faults import (
    Tally,
    all_published,
    audit_changes,
    expected_changes,
    make_world,
    read_changes,
    record,
    scale,
)
from tests.service_process import free_port

pytestmark = pytest.mark.integration

RATE = 30.0  # events per second, one request each: a resend never reorders a location's events


@pytest.fixture
def broker(tmp_path: Path, kafka_settings: KafkaSettings) -> Iterator[LocalBroker]:
    own = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap="384m")
    own.start()
    try:
        yield own
    finally:
        own.stop(hard=True)


def test_broker_stopped_and_restarted_under_load_every_accepted_event_counts_once(
    broker: LocalBroker, tmp_path: Path
) -> None:
    outages, outage_s = scale().broker_outages, scale().outage_s
    rng = random.Random(outages)
    create_topics(broker.bootstrap_servers, Topics())
    world = make_world(seed=14, locations=scale().locations, days=scale().days, per_location_day=0.3)
    scorer = fault_scorer(tmp_path, "", kafka_port=broker.port)
    (tmp_path / "ingest").mkdir()
    settings = {"CARESIGNAL_INGEST_PRODUCE_TIMEOUT_S": "3", "CARESIGNAL_INGEST_RETRY_AFTER_S": "1"}
    ingest_process = FaultIngest("", tmp_path / "ingest", kafka_port=broker.port, settings=settings)
    started = time.monotonic()
    down_answers: list[int] = []
    try:
        ingest_process.start()
        with httpx.Client(base_url=ingest_process.url, timeout=30) as ingest:
            put_directory(ingest, world)
            scorer.start()
            wait_for_directory(scorer.url, world.locations)
            load, client = ingest_load(ingest, world.events, rate=RATE, batch=1)
            for outage in range(outages):
                time.sleep(rng.uniform(2.0, 5.0))
                assert load.running, "the world's events ran out before every outage: not under load"
                broker.stop(hard=outage % 2 == 1)  # a clean stop, then a crash, in turn
                went_down = time.monotonic()
                while time.monotonic() - went_down < outage_s:
                    down_answers.append(ingest.get("/readyz").status_code)
                    time.sleep(1.0)
                broker.start()
            time.sleep(3.0)
            load.stop()
        assert set(down_answers) == {503}, f"ingest answered {sorted(set(down_answers))} while the broker was down"
        assert client.statuses[503] >= outages, f"no 503 during an outage: {dict(client.statuses)}"

        expected = expected_changes(world, load.sent)
        values = read_changes(
            broker.bootstrap_servers, Topics().risk_changes, all_published(expected.changes), timeout_s=180
        )
        audit = audit_changes(expected.changes, values)
        # Every accepted event applied once: resends and redeliveries are recognised by id.
        deadline = time.monotonic() + 60
        while (applied := scorer_metric(scorer.url, "caresignal_scoring_events_total", status="applied")) < (
            expected.applied
        ) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert scorer.process is not None and scorer.process.poll() is None, "the scorer died in the outage"
    finally:
        scorer.stop()
        ingest_process.stop()
    record(
        Tally(
            "broker stop/restart",
            outages,
            len(load.sent),
            len(expected.changes),
            0,
            len(audit.lost),
            audit.duplicated,
            time.monotonic() - started,
            f"{outage_s:.0f} s outages; {client.statuses[503]} answers 503, all resent; applied {applied:.0f}",
        )
    )
    assert audit.lost == [], f"level changes lost: {audit.lost[:10]}"
    assert audit.extra == [] and audit.conflicting == [], (audit.extra[:10], audit.conflicting[:10])
    assert applied == expected.applied, f"the scorer applied {applied} events, the oracle {expected.applied}"
