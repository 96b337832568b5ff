"""A client no one here wrote (kcat, librdkafka) reads what ingest accepted."""

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from schemas.examples import example_event
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.conftest import KEYS

pytestmark = pytest.mark.integration


@pytest.fixture
def client(test_kafka_settings: KafkaSettings, api_keys: ApiKeyRegistry) -> Iterator[TestClient]:
    with TestClient(create_app(IngestSettings(), test_kafka_settings, api_keys)) as test_client:
        yield test_client


def test_kcat_consumes_the_accepted_event(client: TestClient, topics: Topics, kafka_settings: KafkaSettings) -> None:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is not installed: `make test` installs it (Debian package kcat)"
    key, source = KEYS["ecm"][0], KEYS["ecm"][1]
    sent = example_event("missed_visit", event_id="kcat-1", source=source, location_id="1-123123123")
    assert client.post("/v1/events", json=sent, headers={"Authorization": f"Bearer {key}"}).status_code == 202

    out = subprocess.run(
        [kcat, "-b", kafka_settings.bootstrap_servers, "-C", "-t", topics.events, "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [message] = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert message["key"] == "1-123123123"
    payload = json.loads(message["payload"])
    assert payload["id"] == "kcat-1" and payload["type"] == "uk.caresignal.missed_visit.v1"
    assert payload["data"] == sent["data"]
    assert any(h.startswith("application/cloudevents+json") for h in message.get("headers", []))
