"""The ingest API against the real broker: what is accepted is on the topic, keyed by
location, with the same content; what is refused leaves nothing behind."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from schemas.events import EventParser
from schemas.examples import example_event
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.conftest import KEYS, consume_all

pytestmark = pytest.mark.integration

ECM_KEY, ECM_SOURCE = KEYS["ecm"][0], KEYS["ecm"][1]
ALL_KEY, ALL_SOURCE = KEYS["all"][0], KEYS["all"][1]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(test_kafka_settings: KafkaSettings, api_keys: ApiKeyRegistry) -> Iterator[TestClient]:
    settings = IngestSettings(max_event_bytes=4096, max_batch_bytes=512 * 1024, produce_timeout_s=10)
    with TestClient(create_app(settings, test_kafka_settings, api_keys)) as test_client:
        yield test_client


def missed_visit(event_id: str = "ecm-1", location: str = "1-101234567") -> dict:  # type: ignore[type-arg]
    return example_event("missed_visit", event_id=event_id, source=ECM_SOURCE, location_id=location)


def test_accepted_event_is_on_the_topic_keyed_by_location_with_the_same_content(
    client: TestClient, topics: Topics, kafka_settings: KafkaSettings
) -> None:
    sent = missed_visit("ecm-42", "1-109876543")
    response = client.post("/v1/events", json=sent, headers=auth(ECM_KEY))
    assert response.status_code == 202, response.text
    assert response.json()["id"] == "ecm-42"

    [record] = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=1)
    assert record.key == b"1-109876543"
    assert dict(record.headers)["content-type"].startswith(b"application/cloudevents+json")
    stored = json.loads(record.value)
    assert EventParser().parse_obj(stored) == EventParser().parse_obj(sent)
    assert stored["data"] == sent["data"] and stored["id"] == sent["id"] and stored["subject"] == sent["subject"]
    assert record.partition == response.json()["partition"] and record.offset == response.json()["offset"]


def test_refused_requests_write_nothing(client: TestClient, topics: Topics, kafka_settings: KafkaSettings) -> None:
    event = missed_visit()
    refused = {
        "no key": client.post("/v1/events", json=event),
        "wrong key": client.post("/v1/events", json=event, headers=auth("cs_wrong")),
        "type not allowed": client.post(
            "/v1/events", json=example_event("police_flag", source=ECM_SOURCE), headers=auth(ECM_KEY)
        ),
        "source mismatch": client.post(
            "/v1/events", json=example_event("missed_visit", source=ALL_SOURCE), headers=auth(ECM_KEY)
        ),
        "too large": client.post(
            "/v1/events",
            content=b"{" + b" " * 5000 + b"}",
            headers={**auth(ECM_KEY), "content-type": "application/json"},
        ),
        "malformed": client.post(
            "/v1/events",
            content=b'{"specversion": "1.0",',
            headers={**auth(ECM_KEY), "content-type": "application/json"},
        ),
        "invalid": client.post("/v1/events", json={**event, "subject": "Jane Doe"}, headers=auth(ECM_KEY)),
    }
    statuses = {name: r.status_code for name, r in refused.items()}
    assert statuses == {
        "no key": 401,
        "wrong key": 401,
        "type not allowed": 403,
        "source mismatch": 403,
        "too large": 413,
        "malformed": 422,
        "invalid": 422,
    }
    assert refused["no key"].headers["www-authenticate"] == "Bearer"
    # A sentinel proves the topic is readable and that only it was written.
    assert client.post("/v1/events", json=missed_visit("sentinel"), headers=auth(ECM_KEY)).status_code == 202
    records = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=1)
    assert [json.loads(r.value)["id"] for r in records] == ["sentinel"]


def test_422_names_the_field_and_reason_without_echoing_the_value(client: TestClient) -> None:
    event = missed_visit()
    event["data"] = {**event["data"], "patient_name": "Jane Doe"}
    event["subject"] = "Jane Doe"
    response = client.post("/v1/events", json=event, headers=auth(ECM_KEY))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {tuple(d["loc"]) for d in detail} == {("body", "subject"), ("body", "data", "patient_name")}
    assert all(d["msg"] for d in detail)
    assert "Jane Doe" not in response.text

    malformed = client.post(
        "/v1/events", content=b"{not json", headers={**auth(ECM_KEY), "content-type": "application/json"}
    )
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["type"] == "json_invalid"


def test_oversized_chunked_body_is_refused_while_streaming(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = client.post(
        "/v1/events", content=chunks(), headers={**auth(ECM_KEY), "content-type": "application/json"}
    )
    assert response.status_code == 413


def test_non_json_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/v1/events", content=b"a=b", headers={**auth(ECM_KEY), "content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415


def test_batch_answers_per_item(client: TestClient, topics: Topics, kafka_settings: KafkaSettings) -> None:
    batch = [
        missed_visit("b-0", "1-100000001"),
        {**missed_visit("b-1"), "subject": "nope"},
        example_event("complaint", event_id="b-2", source=ECM_SOURCE),
        missed_visit("b-3", "1-100000003"),
    ]
    response = client.post("/v1/events/batch", json=batch, headers=auth(ECM_KEY))
    assert response.status_code == 207
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 2
    assert [(r["index"], r["status"], r.get("code")) for r in body["results"]] == [
        (0, "accepted", None),
        (1, "rejected", 422),
        (2, "rejected", 403),
        (3, "accepted", None),
    ]
    assert body["results"][1]["errors"][0]["loc"] == ["body", 1, "subject"]
    records = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=2)
    assert sorted((r.key, json.loads(r.value)["id"]) for r in records) == [
        (b"1-100000001", "b-0"),
        (b"1-100000003", "b-3"),
    ]


def test_ndjson_batch_all_accepted(client: TestClient, topics: Topics, kafka_settings: KafkaSettings) -> None:
    lines = [json.dumps(missed_visit(f"n-{i}", f"1-20000000{i}")) for i in range(5)]
    body = ("\n".join(lines) + "\n\n").encode()
    response = client.post(
        "/v1/events/batch", content=body, headers={**auth(ECM_KEY), "content-type": "application/x-ndjson"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 5
    assert len(consume_all(kafka_settings.bootstrap_servers, topics.events, expect=5)) == 5


def test_batch_limits(client: TestClient, topics: Topics, kafka_settings: KafkaSettings) -> None:
    too_many = [missed_visit(f"m-{i}") for i in range(1001)]
    assert client.post("/v1/events/batch", json=too_many, headers=auth(ECM_KEY)).status_code == 413
    not_array = client.post("/v1/events/batch", json={"events": []}, headers=auth(ECM_KEY))
    assert not_array.status_code == 422
    assert client.post("/v1/events/batch", json=[], headers=auth(ECM_KEY)).status_code == 422
    bad_line = client.post(
        "/v1/events/batch", content=b'{"broken"\n', headers={**auth(ECM_KEY), "content-type": "application/x-ndjson"}
    )
    assert bad_line.status_code == 207
    assert bad_line.json()["results"][0]["line"] == 1
    assert client.post("/v1/events", json=missed_visit("sentinel"), headers=auth(ECM_KEY)).status_code == 202
    records = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=1)
    assert [json.loads(r.value)["id"] for r in records] == ["sentinel"]


def test_directory_records_go_to_compacted_topics(
    client: TestClient, topics: Topics, kafka_settings: KafkaSettings
) -> None:
    location = {
        "location_id": "1-101234567",
        "provider_id": "1-000111222",
        "service_type": "care_home",
        "capacity": 40,
        "host_authority": "E10000030",
        "name": "Oak House",
    }
    assert client.put("/v1/locations/1-101234567", json=location, headers=auth(ALL_KEY)).status_code == 200
    assert client.put("/v1/locations/1-101234567", json=location, headers=auth(ECM_KEY)).status_code == 403
    mismatch = client.put("/v1/locations/1-109999999", json=location, headers=auth(ALL_KEY))
    assert mismatch.status_code == 422 and mismatch.json()["detail"][0]["loc"] == ["body", "location_id"]
    assert client.put("/v1/locations/nope", json=location, headers=auth(ALL_KEY)).status_code == 422
    placement = {"authority": "E06000036", "location_id": "1-101234567", "people_placed": 2, "status": "active"}
    assert client.put("/v1/placements/E06000036/1-101234567", json=placement, headers=auth(ALL_KEY)).status_code == 200
    authority = {"ons_code": "E06000036", "name": "Bracknell Forest Council"}
    assert client.put("/v1/authorities/E06000036", json=authority, headers=auth(ALL_KEY)).status_code == 200

    [loc] = consume_all(kafka_settings.bootstrap_servers, topics.locations, expect=1)
    assert loc.key == b"1-101234567" and json.loads(loc.value)["capacity"] == 40
    [pla] = consume_all(kafka_settings.bootstrap_servers, topics.placements, expect=1)
    assert pla.key == b"1-101234567/E06000036"
    [aut] = consume_all(kafka_settings.bootstrap_servers, topics.authorities, expect=1)
    assert aut.key == b"E06000036"


def test_health_ready_metrics_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/v1/events", json=missed_visit("metric-1"), headers=auth(ECM_KEY))
    client.post("/v1/events/batch", json=[missed_visit("metric-2")], headers=auth(ECM_KEY))
    metrics = client.get("/metrics").text
    assert 'caresignal_ingest_events_total{event_type="missed_visit",outcome="accepted"} 2.0' in metrics
    assert "caresignal_ingest_produce_seconds_bucket" in metrics
    assert "caresignal_ingest_batch_size_count 1.0" in metrics
    assert 'caresignal_ingest_requests_total{route="/v1/events",status="202"} 1.0' in metrics
    spec = client.get("/openapi.json").json()
    assert "Event" in spec["components"]["schemas"] and "Location" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_event_time_in_the_future_is_422(client: TestClient) -> None:
    event = missed_visit()
    event["time"] = datetime(2100, 1, 1, tzinfo=UTC).isoformat()
    response = client.post("/v1/events", json=event, headers=auth(ECM_KEY))
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "time"]


@pytest.mark.parametrize(
    ("short_type", "bad", "field"),
    [
        (
            "provider_incident",
            {"category": "medication_error", "harm": "low", "description": "wrong tablets"},
            ("body", "data", "description"),
        ),
        ("care_review", {"finding_level": "moderate"}, ("body", "data", "finding_level")),
    ],
)
def test_the_provider_incident_and_care_review_signals_are_accepted_and_checked(
    client: TestClient,
    topics: Topics,
    kafka_settings: KafkaSettings,
    short_type: str,
    bad: dict,  # type: ignore[type-arg]
    field: tuple[str, ...],
) -> None:
    sent = example_event(short_type, event_id=f"{short_type}-1", source=ALL_SOURCE, location_id="1-101234567")
    accepted = client.post("/v1/events", json=sent, headers=auth(ALL_KEY))
    assert accepted.status_code == 202, accepted.text
    refused = client.post("/v1/events", json={**sent, "id": f"{short_type}-2", "data": bad}, headers=auth(ALL_KEY))
    assert refused.status_code == 422
    assert [tuple(d["loc"]) for d in refused.json()["detail"]] == [field]
    assert "wrong tablets" not in refused.text
    [record] = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=1)
    assert json.loads(record.value)["type"] == f"uk.caresignal.{short_type}.v1"
    assert EventParser().parse_obj(json.loads(record.value)) == EventParser().parse_obj(sent)
