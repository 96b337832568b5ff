"""What ingest admits, against the real broker: strict JSON types in event data, and
events older than the age limit only from a backfill key, marked as backfill on the topic."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.v1.conversion import to_binary
from cloudevents.v1.http import CloudEvent
from fastapi.testclient import TestClient

from schemas.events import SHORT_NAMES
from schemas.examples import EXAMPLE_DATA, example_event
from schemas.topics import BACKFILL_HEADER, Topics
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyEntry, ApiKeyRegistry, hash_key
from services.ingest.settings import IngestSettings
from tests.conftest import consume_all

pytestmark = pytest.mark.integration

LIVE_KEY, BACKFILL_KEY = "cs_test_live", "cs_test_backfill"
LIVE_SOURCE, BACKFILL_SOURCE = "urn:caresignal:source:live", "urn:caresignal:source:history"


@pytest.fixture
def client(test_kafka_settings: KafkaSettings) -> Iterator[TestClient]:
    keys = ApiKeyRegistry(
        [
            ApiKeyEntry(name="live", sha256=hash_key(LIVE_KEY), source=LIVE_SOURCE, event_types=sorted(SHORT_NAMES)),
            ApiKeyEntry(
                name="history",
                sha256=hash_key(BACKFILL_KEY),
                source=BACKFILL_SOURCE,
                event_types=sorted(SHORT_NAMES),
                backfill=True,
            ),
        ]
    )
    settings = IngestSettings(max_event_age_days=30)
    with TestClient(create_app(settings, test_kafka_settings, keys)) as test_client:
        yield test_client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def event(
    short_type: str, event_id: str, days_ago: float = 0, source: str = LIVE_SOURCE, **data: Any
) -> dict[str, Any]:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago, minutes=1)
    return example_event(
        short_type, event_id=event_id, source=source, time=when, data={**EXAMPLE_DATA[short_type], **data}
    )


@pytest.mark.parametrize(
    ("short_type", "field", "value"),
    [
        ("safeguarding_concern", "serious", "yes"),
        ("safeguarding_concern", "linked_death", 0),
        ("statutory_notification", "linked_to_safeguarding", "false"),
        ("missed_visit", "time_critical", 1),
        ("missed_visit", "minutes_late", "95"),
        ("missed_visit", "minutes_late", 95.0),
        ("police_flag", "care_related", "true"),
        ("cqc_enforcement", "quality_related", "1"),
        ("workforce", "agency_staff_share", "0.4"),
        ("workforce", "training_gaps", "no"),
        ("health_use", "repeat_injury", 1),
        ("cqc_rating", "published", 1_699_920_000),
    ],
)
def test_event_data_takes_only_its_own_json_types(client: TestClient, short_type: str, field: str, value: Any) -> None:
    response = client.post("/v1/events", json=event(short_type, "strict-1", **{field: value}), headers=auth(LIVE_KEY))
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["detail"]] == [["body", "data", field]]


def test_strict_types_still_take_valid_json(client: TestClient) -> None:
    ok = [
        event("workforce", "ok-1", agency_staff_share=1),  # an integer is a number
        event("cqc_rating", "ok-2", published="2026-01-31"),
        event("missed_visit", "ok-3", minutes_late=5, time_critical=False),
    ]
    response = client.post("/v1/events/batch", json=ok, headers=auth(LIVE_KEY))
    assert response.status_code == 202, response.text
    timestamp = {**event("complaint", "ok-4"), "time": 1_700_000_000}
    refused = client.post("/v1/events", json=timestamp, headers=auth(LIVE_KEY))
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "time"]


def test_old_events_need_a_backfill_key_and_are_marked_on_the_topic(
    client: TestClient, topics: Topics, kafka_settings: KafkaSettings
) -> None:
    old = client.post("/v1/events", json=event("complaint", "old-1", days_ago=31), headers=auth(LIVE_KEY))
    assert old.status_code == 422
    assert old.json()["detail"] == [
        {
            "loc": ["body", "time"],
            "msg": "older than 30 days; history is loaded with a backfill key",
            "type": "event_too_old",
        }
    ]
    headers, body = to_binary(CloudEvent(event("complaint", "old-2", days_ago=45), EXAMPLE_DATA["complaint"]))
    binary = client.post("/v1/events", content=body, headers={**headers, **auth(LIVE_KEY)})
    assert binary.status_code == 422 and binary.json()["detail"][0]["loc"] == ["header", "ce-time"]
    batch = client.post(
        "/v1/events/batch",
        json=[event("complaint", "old-3", days_ago=400), event("complaint", "live-1", days_ago=29)],
        headers=auth(LIVE_KEY),
    )
    assert batch.status_code == 207
    assert [(r["status"], r.get("code")) for r in batch.json()["results"]] == [("rejected", 422), ("accepted", None)]
    assert batch.json()["results"][0]["errors"][0]["loc"] == ["body", 0, "time"]

    history = auth(BACKFILL_KEY)
    assert client.post(
        "/v1/events", json=event("complaint", "hist-1", 3000, BACKFILL_SOURCE), headers=history
    ).status_code == (202)
    headers, body = to_binary(
        CloudEvent(event("police_flag", "hist-2", 200, BACKFILL_SOURCE), EXAMPLE_DATA["police_flag"])
    )
    assert client.post("/v1/events", content=body, headers={**headers, **history}).status_code == 202
    recent_history = [
        event("complaint", "hist-3", 1, BACKFILL_SOURCE),
        event("complaint", "hist-4", 500, BACKFILL_SOURCE),
    ]
    assert client.post("/v1/events/batch", json=recent_history, headers=history).status_code == 202

    records = consume_all(kafka_settings.bootstrap_servers, topics.events, expect=5)
    marked = {json.loads(r.value)["id"]: dict(r.headers).get(BACKFILL_HEADER) for r in records}
    # Everything a backfill key sends is marked, however recent; nothing a live key sends is.
    assert marked == {"live-1": None, "hist-1": b"1", "hist-2": b"1", "hist-3": b"1", "hist-4": b"1"}


def test_the_default_age_limit_is_the_default_policys_retention() -> None:
    import yaml

    from services.broker.settings import PROJECT_ROOT

    policy = yaml.safe_load((PROJECT_ROOT / "deploy" / "policy" / "default.yaml").read_text())
    assert IngestSettings().max_event_age_days == policy["retention_days"] == 400


def test_apikey_create_backfill_makes_a_backfill_key(tmp_path: Path) -> None:
    from services.cli import main

    keys, clear = tmp_path / "keys.toml", tmp_path / "key"
    common = ["apikey", "create", "--source", BACKFILL_SOURCE, "--all-types", "--file", str(keys)]
    assert main([*common, "--name", "history", "--backfill", "--write-key-to", str(clear)]) == 0
    assert main([*common, "--name", "live", "--write-key-to", str(tmp_path / "live")]) == 0
    registry = ApiKeyRegistry.load(keys)
    history, live = (
        registry.authenticate(clear.read_text().strip()),
        registry.authenticate((tmp_path / "live").read_text().strip()),
    )
    assert history is not None and history.backfill
    assert live is not None and not live.backfill
