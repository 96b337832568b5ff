"""CloudEvents over HTTP with the official SDK (PyPI `cloudevents`) as the producer: binary
content mode (its default) and structured mode are accepted alike and stored alike."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent
from fastapi.testclient import TestClient

from schemas.events import TYPE_BY_SHORT_NAME
from schemas.examples import EXAMPLE_DATA
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.conftest import KEYS, consume_all

pytestmark = pytest.mark.integration

KEY, SOURCE = KEYS["all"][0], KEYS["all"][1]
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(test_kafka_settings: KafkaSettings, api_keys: ApiKeyRegistry) -> Iterator[TestClient]:
    with TestClient(create_app(IngestSettings(), test_kafka_settings, api_keys)) as test_client:
        yield test_client


def attributes(short_type: str, event_id: str, location: str = "1-101234567", **extra: Any) -> dict[str, Any]:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return {
        "type": TYPE_BY_SHORT_NAME[short_type],
        "source": SOURCE,
        "id": event_id,
        "subject": location,
        "time": when.isoformat().replace("+00:00", "Z"),
        **extra,
    }


def post(client: TestClient, headers: dict[str, str], body: bytes | str) -> Any:
    return client.post("/v1/events", content=body, headers={**AUTH, **headers})


def test_sdk_binary_and_structured_modes_are_stored_alike(
    client: TestClient, topics: Topics, kafka_settings: KafkaSettings
) -> None:
    binary = CloudEvent(attributes("missed_visit", "ce-bin-1", "1-100000001"), EXAMPLE_DATA["missed_visit"])
    structured = CloudEvent(attributes("missed_visit", "ce-str-1", "1-100000002"), EXAMPLE_DATA["missed_visit"])
    # The SDK's default binary mode sends no Content-Type unless datacontenttype is set.
    typed = CloudEvent(
        attributes("safeguarding_concern", "ce-bin-2", "1-100000003", datacontenttype="application/json"),
        EXAMPLE_DATA["safeguarding_concern"],
    )
    answers = {}
    for name, (headers, body) in {
        "binary": to_binary(binary),
        "structured": to_structured(structured),
        "binary typed": to_binary(typed),
    }.items():
        response = post(client, headers, body)
        assert response.status_code == 202, (name, response.text)
        answers[name] = response.json()
    assert "content-type" not in {k.lower() for k in to_binary(binary)[0]}

    records = {json.loads(r.value)["id"]: r for r in consume_all(kafka_settings.bootstrap_servers, topics.events, 3)}
    assert set(records) == {"ce-bin-1", "ce-str-1", "ce-bin-2"}
    for event_id, event in (("ce-bin-1", binary), ("ce-str-1", structured), ("ce-bin-2", typed)):
        record = records[event_id]
        stored = json.loads(record.value)
        # The whole event, structured, whatever mode it came in.
        assert stored == {
            "specversion": "1.0",
            "id": event_id,
            "source": SOURCE,
            "type": event["type"],
            "time": event["time"],
            "subject": event["subject"],
            "datacontenttype": "application/json",
            # Ingest stores the validated event, with its optional fields' defaults.
            "data": {**dict.fromkeys(stored["data"]), **event.get_data()},
        }
        assert record.key == event["subject"].encode()
        assert dict(record.headers)["content-type"].startswith(b"application/cloudevents+json")
    assert records["ce-bin-1"].offset == answers["binary"]["offset"]


def test_core_sdk_binary_mode_and_percent_encoded_headers(
    client: TestClient, topics: Topics, kafka_settings: KafkaSettings
) -> None:
    attrs = {**attributes("complaint", "core-1"), "specversion": "1.0"}
    attrs["time"] = datetime.now(UTC) - timedelta(minutes=5)
    message = ce_http.to_binary_event(CoreCloudEvent(attrs, EXAMPLE_DATA["complaint"]))
    response = post(client, message.headers, message.body)
    assert response.status_code == 202, response.text
    # Header values are percent-encoded (HTTP binding 3.1.3.2): `%3A` is a colon.
    encoded = {**message.headers, "ce-id": "core%3A2"}
    assert post(client, encoded, message.body).json()["id"] == "core:2"
    records = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=2)
    assert sorted(json.loads(r.value)["id"] for r in records) == ["core-1", "core:2"]


def test_binary_mode_is_validated_like_structured_and_names_the_header(
    client: TestClient, topics: Topics, kafka_settings: KafkaSettings
) -> None:
    headers, body = to_binary(
        CloudEvent(attributes("safeguarding_concern", "ce-bad"), EXAMPLE_DATA["safeguarding_concern"])
    )
    data = json.loads(body)

    def refused(changed_headers: dict[str, str], new_body: bytes | str = body) -> list[tuple[tuple[Any, ...], str]]:
        response = post(client, changed_headers, new_body)
        assert response.status_code == 422, response.text
        return [(tuple(p["loc"]), p["msg"]) for p in response.json()["detail"]]

    without_id = {k: v for k, v in headers.items() if k != "ce-id"}
    assert refused(without_id) == [(("header", "ce-id"), "missing header ce-id (CloudEvents binary mode)")]
    without_type = {k: v for k, v in headers.items() if k != "ce-type"}
    assert refused(without_type)[0][0] == ("header", "ce-type")
    # Not a CloudEvent at all without ce-specversion: the header is named, not a discriminator.
    without_version = {k: v for k, v in headers.items() if k != "ce-specversion"}
    assert refused(without_version)[0][0] == ("header", "ce-specversion")

    [(loc, _)] = refused({**headers, "ce-subject": "Jane Doe"})
    assert loc == ("header", "ce-subject")
    [(loc, _)] = refused({**headers, "ce-time": "2001-13-01"})
    assert loc == ("header", "ce-time")
    [(loc, _)] = refused({**headers, "ce-patientname": "x"})
    assert loc == ("header", "ce-patientname")
    [(loc, _)] = refused(headers, json.dumps({**data, "serious": "yes"}))
    assert loc == ("body", "serious")
    [(loc, _)] = refused(headers, b"{not json")
    assert loc == ("body",)

    wrong_type = post(client, {**headers, "content-type": "text/plain"}, body)
    assert wrong_type.status_code == 415 and "text/plain" in wrong_type.json()["detail"]
    assert post(client, headers, body).status_code == 202
    [record] = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=1)
    assert json.loads(record.value)["id"] == "ce-bad"
