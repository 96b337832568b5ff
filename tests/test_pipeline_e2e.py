"""End to end: events POSTed to ingest, scored by the real scorer process, alerted by the
real alert service process, received by real webhook receivers and a real SMTP server."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from schemas.examples import example_event
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.alert_peers import HOST, PLACER_A, PLACER_B, THIRD, Peers, make_alerts
from tests.conftest import KEYS
from tests.service_process import ScorerProcess

pytestmark = pytest.mark.integration

SOURCE = KEYS["all"][1]
HEADERS = {"Authorization": f"Bearer {KEYS['all'][0]}"}
LOCATION = "1-500000001"
ELSEWHERE = "1-500000002"  # THIRD's own location: THIRD is a real authority, just not placing here


@pytest.fixture
def scorer(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ScorerProcess]:
    (tmp_path / "scorer").mkdir()
    process = ScorerProcess(topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path / "scorer")
    try:
        yield process
    finally:
        process.stop()


def wait_for_status(url: str, status: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(url, timeout=10).status_code != status:
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        time.sleep(0.3)


def test_events_to_major_reach_host_and_placing_authorities_and_the_fall_reaches_them_too(
    scorer: ScorerProcess,
    test_kafka_settings: KafkaSettings,
    api_keys: ApiKeyRegistry,
    peers: Peers,
    tmp_path: Path,
) -> None:
    (tmp_path / "alerts").mkdir()
    alerts = make_alerts(tmp_path / "alerts", test_kafka_settings, peers)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with TestClient(create_app(IngestSettings(), test_kafka_settings, api_keys)) as ingest:
            for loc, host in ((LOCATION, HOST), (ELSEWHERE, THIRD)):
                record = {
                    "location_id": loc,
                    "provider_id": "1-000999888",
                    "service_type": "nursing_home",
                    "capacity": 45,
                    "host_authority": host,
                    "name": "Meadow View",
                }
                assert ingest.put(f"/v1/locations/{loc}", json=record, headers=HEADERS).status_code == 200
            for authority in (PLACER_A, PLACER_B):
                placement = {"authority": authority, "location_id": LOCATION, "people_placed": 3, "status": "active"}
                path = f"/v1/placements/{authority}/{LOCATION}"
                assert ingest.put(path, json=placement, headers=HEADERS).status_code == 200, path
            scorer.start()
            alerts.start()
            wait_for_status(f"{scorer.url}/v1/directory/locations/{LOCATION}", 200)

            # A concern about serious neglect, long enough ago that its 90-day hold has run out
            # by the time the next event moves the location's clock to today.
            concern = example_event(
                "safeguarding_concern",
                event_id="sg-e2e-1",
                source=SOURCE,
                location_id=LOCATION,
                time=now - timedelta(days=120),
                data={"abuse_type": "neglect", "serious": True, "linked_death": False},
            )
            assert ingest.post("/v1/events", json=concern, headers=HEADERS).status_code == 202
            for authority in (HOST, PLACER_A, PLACER_B):
                peers.hooks[authority].wait_for(1, timeout=90)
            raised = peers.hooks[HOST].received()[0].body["data"]
            assert (raised["kind"], raised["new_level"], raised["location_id"]) == ("escalation", "major", LOCATION)
            assert raised["reasons"][0]["rule_id"] == "serious_abuse_or_neglect"
            assert raised["reasons"][0]["evidence_ids"] == ["sg-e2e-1"]
            assert any(a["lead"] for a in raised["actions"])

            later = example_event(
                "missed_visit",
                event_id="mv-e2e-1",
                source=SOURCE,
                location_id=LOCATION,
                time=now - timedelta(minutes=1),
                data={"outcome": "late", "minutes_late": 20, "time_critical": False},
            )
            assert ingest.post("/v1/events", json=later, headers=HEADERS).status_code == 202
            for authority in (HOST, PLACER_A, PLACER_B):
                peers.hooks[authority].wait_for(2, timeout=90)
        cleared = [peers.hooks[a].received()[1].body["data"] for a in (HOST, PLACER_A, PLACER_B)]
        assert {(c["kind"], c["old_level"]) for c in cleared} == {("de-escalation", "major")}
        peers.smtp.wait_for(6, timeout=60)
        time.sleep(1.0)
        assert peers.hooks[THIRD].received() == []
        assert not any("e09000033" in m.rcpt_tos[0] for m in peers.smtp.messages())
    finally:
        alerts.stop()
