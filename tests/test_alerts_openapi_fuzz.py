"""schemathesis against the alert service's own OpenAPI document, served by the real process.

The process has the real broker (this test's topics), a SQLite store in tmp_path, and
keys for an operator and an authority. Every operation is exercised with valid and
invalid inputs under both keys: no answer may be a 5xx, every answer's status must be
documented, and every body must match the schema documented for its status.
Deterministic (derandomized) and bounded: a few hundred requests in all.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from tests.alert_peers import HOST, LOCATION, OPERATOR_KEY, PLACER_A, Peers, key_for, make_alerts
from tests.service_process import AlertsProcess
from tests.test_alerts_service import Feed, standard_directory

pytestmark = pytest.mark.integration

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 12  # per key and mode: ~380 requests in all (operations without input need fewer)
KEYS = {"operator": OPERATOR_KEY, "authority": key_for(HOST)}


@pytest.fixture
def running(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers, feed: Feed
) -> Iterator[tuple[AlertsProcess, dict[str, str]]]:
    process = make_alerts(tmp_path, test_kafka_settings, peers)
    try:
        standard_directory(feed)
        process.start()
        # Real rows, so that list and detail bodies are checked with content and every
        # operation answers 2xx now and then: an alert, a mute, an endpoint disabled by a 410.
        peers.hooks[PLACER_A].set_response(410)
        feed.change("none", "major")
        yield process, seed(process)
    finally:
        process.stop()


@pytest.fixture
def feed(test_kafka_settings: KafkaSettings, topics: Topics) -> Iterator[Feed]:
    f = Feed(test_kafka_settings, topics)
    try:
        yield f
    finally:
        f.close()


def seed(process: AlertsProcess) -> dict[str, str]:
    """Path parameters that name real rows: alert, mute and disabled endpoint ids."""
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    deadline = time.monotonic() + 30
    disabled = f"hook-{PLACER_A.lower()}"
    while time.monotonic() < deadline:
        listed = httpx.get(f"{process.url}/v1/alerts", headers=operator, timeout=10).json()
        endpoints = httpx.get(f"{process.url}/v1/endpoints", headers=operator, timeout=10).json()
        if listed and any(e["endpoint_id"] == disabled and e["disabled"] for e in endpoints):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the seeded change never became an alert with a 410'd endpoint")
    mute = httpx.post(
        f"{process.url}/v1/mutes",
        headers=operator,
        timeout=10,
        json={"location_id": LOCATION, "authority": HOST, "hours": 1},
    )
    assert mute.status_code == 201, mute.text
    return {"alert_id": listed[0]["alert_id"], "mute_id": str(mute.json()["mute_id"]), "endpoint_id": disabled}


def exercise(
    operation: Any,
    who: str,
    mode: schemathesis.GenerationMode,
    base_url: str,
    known: dict[str, str],
    failures: list[str],
    answered: dict[str, set[int]],
) -> None:
    """Run one operation under one key and mode; failures are collected, not raised, so that
    one run reports every operation that answers off its documentation."""
    strategy = operation.as_strategy(generation_mode=mode, headers={"Authorization": f"Bearer {KEYS[who]}"})

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    # Now and then the real ids, so that detail, acknowledge, revoke and enable answer 2xx too.
    @given(case=strategy, use_known=st.booleans())
    def run(case: Any, use_known: bool) -> None:
        if use_known and mode is schemathesis.GenerationMode.POSITIVE and case.path_parameters:
            for name in case.path_parameters:
                if name in known:
                    case.path_parameters[name] = known[name]
        response = case.call(base_url=base_url, timeout=10)
        answered.setdefault(operation.label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            notes = "\n".join(getattr(exc, "__notes__", []))
            failures.append(f"{who} {mode.value} {operation.label}: {exc}\n{notes}"[:2500])

    try:
        run()
    except Unsatisfiable:
        # No parameters and no body: nothing to make invalid.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise


def test_every_operation_answers_as_documented(running: tuple[AlertsProcess, dict[str, str]]) -> None:
    process, known = running
    document = httpx.get(f"{process.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    for operation in operations:
        for who in KEYS:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                exercise(operation, who, mode, process.url, known, failures, answered)
    assert not failures, "\n\n".join(failures)
    # Not only refusals: every operation was seen doing its job, and refusing bad input.
    assert [label for label, codes in answered.items() if not any(200 <= c < 300 for c in codes)] == []
    refusing = {label for label, codes in answered.items() if 422 in codes}
    assert {"POST /v1/mutes", "DELETE /v1/mutes/{mute_id}", "GET /v1/alerts/{alert_id}"} <= refusing
