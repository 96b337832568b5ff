"""Every API key x event source x event type against ingest's scoping, in structured,
batch and binary mode: only a key's own source with one of its types is accepted;
everything else is a 403 naming the attribute and why; and nothing but the accepted
events is ever written (the event topic's end offsets count every record).

tests/test_ingest_api.py covers one refused type and one refused source; this covers
every pair."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.v1.conversion import to_binary
from cloudevents.v1.http import CloudEvent
from fastapi.testclient import TestClient

from schemas.events import SHORT_NAMES, TYPE_BY_SHORT_NAME
from schemas.examples import EXAMPLE_DATA, example_event
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyEntry, ApiKeyRegistry, hash_key
from services.ingest.settings import IngestSettings
from tests.conftest import consume_all
from tests.faults import Tally, end_offsets, record

pytestmark = pytest.mark.integration

TYPES = sorted(SHORT_NAMES)
# Key i: source i, three types from the i-th on; plus a key for every type and one for
# the directory only (no event type at all).
SCOPES: dict[str, tuple[str, frozenset[str]]] = {
    f"cs_scope_{i:02d}": (
        f"urn:caresignal:source:scope-{i:02d}",
        frozenset(TYPES[(i + k) % len(TYPES)] for k in range(3)),
    )
    for i in range(len(TYPES))
}
SCOPES["cs_scope_all"] = ("urn:caresignal:source:scope-all", frozenset(TYPES))
SCOPES["cs_scope_dir"] = ("urn:caresignal:source:scope-dir", frozenset())
SOURCES = sorted(source for source, _ in SCOPES.values())


@pytest.fixture
def client(test_kafka_settings: KafkaSettings) -> Iterator[TestClient]:
    keys = ApiKeyRegistry(
        [
            ApiKeyEntry(
                name=key.removeprefix("cs_").replace("_", "-"),
                sha256=hash_key(key),
                source=source,
                event_types=sorted(types),
                directory=not types,
            )
            for key, (source, types) in SCOPES.items()
        ]
    )
    with TestClient(create_app(IngestSettings(), test_kafka_settings, keys)) as test_client:
        yield test_client


def event(n: int, short: str, source: str) -> dict[str, Any]:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return example_event(short, event_id=f"sc-{n:05d}", source=source, location_id="1-101234567", time=when)


def refusal(key: str, source: str, short: str) -> tuple[str, str, str] | None:
    """None if the event is allowed, else what the refusal must name: the attribute, the
    refused value and the reason."""
    own_source, types = SCOPES[key]
    if short not in types:
        return ("type", TYPE_BY_SHORT_NAME[short], "may not send")
    if source != own_source:
        return ("source", source, "does not match the API key's source")
    return None


def test_every_key_source_and_type_is_scoped_and_nothing_else_is_written(
    client: TestClient, test_kafka_settings: KafkaSettings
) -> None:
    started = time.monotonic()
    accepted: set[str] = set()
    n = 0
    cases = [(key, source, short) for key in SCOPES for source in SOURCES for short in TYPES]
    wrong: list[str] = []

    def check(where: str, key: str, source: str, short: str, status: int, detail: Any) -> None:
        expected = refusal(key, source, short)
        if expected is None:
            if status != 202:
                wrong.append(f"{where} {key} {source} {short}: {status} {detail}, not 202")
            return
        attribute, value, reason = expected
        # A single event's refusal is one sentence; a batch item's, located problems.
        problems = [{"loc": [attribute], "msg": detail}] if isinstance(detail, str) else detail
        named = [
            p
            for p in problems
            if p["loc"][-1] in (attribute, f"ce-{attribute}") and value in p["msg"] and reason in p["msg"]
        ]
        if status != 403 or not named:
            wrong.append(f"{where} {key} {source} {short}: {status} {detail}, not a 403 naming {attribute}")

    # Structured mode: one request per case.
    for key, source, short in cases:
        n += 1
        sent = event(n, short, source)
        response = client.post("/v1/events", json=sent, headers={"Authorization": f"Bearer {key}"})
        detail = response.json().get("detail", []) if response.status_code != 202 else []
        check("structured", key, source, short, response.status_code, detail)
        if response.status_code == 202:
            accepted.add(sent["id"])

    # Batch mode: one batch per key holding every source and type; answered item by item.
    for key in SCOPES:
        batch = [
            (source, short, event(n + i + 1, short, source))
            for i, (source, short) in enumerate((s, t) for s in SOURCES for t in TYPES)
        ]
        n += len(batch)
        response = client.post(
            "/v1/events/batch", json=[e for *_, e in batch], headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code in (202, 207), response.text
        for (source, short, sent), result in zip(batch, response.json()["results"], strict=True):
            ok = result["status"] == "accepted"
            check("batch", key, source, short, 202 if ok else result["code"], [] if ok else result["errors"])
            if ok:
                accepted.add(sent["id"])

    # Binary mode: attributes in ce- headers; every key with every type, from its own
    # source and from another's.
    for key, (own, _) in SCOPES.items():
        other = next(s for s in SOURCES if s != own)
        for source in (own, other):
            for short in TYPES:
                n += 1
                sent = event(n, short, source)
                headers, body = to_binary(CloudEvent(sent, EXAMPLE_DATA[short]))
                response = client.post(
                    "/v1/events", content=body, headers={**headers, "Authorization": f"Bearer {key}"}
                )
                detail = response.json().get("detail", []) if response.status_code != 202 else []
                check("binary", key, source, short, response.status_code, detail)
                if response.status_code == 202:
                    accepted.add(sent["id"])

    assert wrong == [], f"{len(wrong)} cases answered wrongly, e.g.:\n" + "\n".join(wrong[:10])
    allowed = sum(refusal(*case) is None for case in cases)
    assert allowed == sum(len(types) for _, types in SCOPES.values())  # each key's own source, its types
    bootstrap, topic = test_kafka_settings.bootstrap_servers, test_kafka_settings.topics.events
    written = end_offsets(bootstrap, topic)
    assert written == len(accepted), f"{written} records on the event topic for {len(accepted)} accepted events"
    ids = [json.loads(r.value)["id"] for r in consume_all(bootstrap, topic, expect=len(accepted))]
    assert sorted(ids) == sorted(accepted)
    record(Tally("ingest scoping", 0, n, 0, 0, 0, 0, time.monotonic() - started, f"{len(accepted)} of {n} accepted"))
