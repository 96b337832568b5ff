"""A broker of this test's own (other ports, own data): stopped mid-test, ingest must
answer 503 with Retry-After and store nothing; restarted, the same event is accepted."""

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from schemas.examples import example_event
from schemas.topics import Topics
from services.broker.local import LocalBroker
from services.broker.settings import KafkaSettings
from services.broker.topics import create_topics
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.conftest import KEYS, consume_all
from tests.service_process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def own_broker(tmp_path: Path, kafka_settings: KafkaSettings) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap="384m")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(hard=True)


def test_503_while_the_broker_is_down_then_the_same_event_is_accepted(
    own_broker: LocalBroker, api_keys: ApiKeyRegistry
) -> None:
    topics = Topics()
    create_topics(own_broker.bootstrap_servers, topics)
    kafka = KafkaSettings(kafka_port=own_broker.port)
    settings = IngestSettings(produce_timeout_s=3, retry_after_s=7)
    key, source = KEYS["ecm"][0], KEYS["ecm"][1]
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings, kafka, api_keys)) as client:
        first = example_event("missed_visit", event_id="before-outage", source=source)
        assert client.post("/v1/events", json=first, headers=headers).status_code == 202

        own_broker.stop()
        during = example_event("missed_visit", event_id="during-outage", source=source)
        response = client.post("/v1/events", json=during, headers=headers)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert "resend" in response.json()["detail"]
        batch = client.post("/v1/events/batch", json=[during], headers=headers)
        assert batch.status_code == 503 and batch.json()["results"][0]["retryable"] is True
        assert client.get("/readyz").status_code == 503

        own_broker.start()
        # The caller retries the same event id until the producer has reconnected.
        for _ in range(20):
            response = client.post("/v1/events", json=during, headers=headers)
            if response.status_code == 202:
                break
        assert response.status_code == 202
        assert client.get("/readyz").status_code == 200

    ids = [json.loads(r.value)["id"] for r in consume_all(own_broker.bootstrap_servers, topics.events, expect=2)]
    # Nothing written during the outage leaked out later as a surprise duplicate or loss.
    assert ids.count("before-outage") == 1
    assert "during-outage" in ids


def test_start_refuses_a_port_held_by_a_process_it_did_not_start(tmp_path: Path) -> None:
    from services.broker.local import BrokerError

    # Something else (here a plain listener; in life another broker) holds the port: start
    # must fail, not claim success because something answers there.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        intruder = LocalBroker(tmp_path / "other", port=holder.getsockname()[1], controller_port=free_port())
        with pytest.raises(BrokerError, match="already in use"):
            intruder.start()
    assert not intruder.status().running
