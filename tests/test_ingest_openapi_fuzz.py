"""schemathesis against ingest's own OpenAPI document, served by a real `caresignal ingest`
process on the real broker (this test's topics), with a valid key that may send every
event type and write the directory.

Every operation is exercised with valid and invalid inputs: no answer may be a 5xx, every
answer's status must be documented, and every body must match the schema documented for
its status. Deterministic (derandomized) and bounded: a few hundred requests in all.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from schemas.events import SHORT_NAMES
from services.apikeys import hash_key
from services.broker.settings import KafkaSettings
from services.ingest.auth import ApiKeyEntry, append_key
from tests.ingest_process import IngestProcess

pytestmark = pytest.mark.integration

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 25  # 8 operations x 2 modes x 25 = 400 requests at most
KEY = "cs_test_fuzz"
SOURCE = "urn:caresignal:source:fuzz"


@pytest.fixture
def ingest(tmp_path: Path, test_kafka_settings: KafkaSettings) -> Iterator[IngestProcess]:
    process = IngestProcess(topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path)
    append_key(
        process.keys_file,
        ApiKeyEntry(
            name="fuzz",
            sha256=hash_key(KEY),
            source=SOURCE,
            event_types=sorted(SHORT_NAMES),
            directory=True,
        ),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _as_own(body: Any) -> Any:
    if isinstance(body, list):
        return [_as_own(item) for item in body]
    if isinstance(body, dict) and "type" in body:
        return {**body, "source": SOURCE, "time": datetime.now(UTC).isoformat()}
    return body


def exercise(
    operation: Any, mode: schemathesis.GenerationMode, base_url: str, failures: list[str], seen: Counter[str]
) -> None:
    """Run one operation in one mode; failures are collected, not raised, so that one run
    reports every operation that answers off its documentation."""
    strategy = operation.as_strategy(generation_mode=mode, headers={"Authorization": f"Bearer {KEY}"})

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    # Half the time the key's own source and a recent time, so that accepted events (202)
    # are checked too, not only refusals.
    @given(case=strategy, own=st.booleans())
    def run(case: Any, own: bool) -> None:
        if own:
            case.body = _as_own(case.body)
        response = case.call(base_url=base_url, timeout=15)
        seen[f"{operation.label} {response.status_code}"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            notes = "\n".join(getattr(exc, "__notes__", []))
            failures.append(f"{mode.value} {operation.label}: {exc}\n{notes}"[:2500])

    try:
        run()
    except Unsatisfiable:
        # No parameters and no body: nothing to make invalid.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise


def test_every_operation_answers_as_documented(ingest: IngestProcess) -> None:
    document = httpx.get(f"{ingest.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/events",
        "POST /v1/events/batch",
        "PUT /v1/locations/{location_id}",
        "PUT /v1/placements/{authority}/{location_id}",
        "PUT /v1/authorities/{ons_code}",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    }
    # Conformance is only as good as the documentation: every answer of the API has a body schema.
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, documented in op["responses"].items():
                if path not in ("/healthz", "/readyz", "/metrics"):
                    assert documented["content"]["application/json"]["schema"], (method, path, status)
    failures: list[str] = []
    seen: Counter[str] = Counter()
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            exercise(operation, mode, ingest.url, failures, seen)
    assert not failures, "\n\n".join(failures)
    # Accepted answers were checked too, not only refusals.
    assert seen["POST /v1/events 202"] and seen["POST /v1/events/batch 202"], sorted(seen.items())
