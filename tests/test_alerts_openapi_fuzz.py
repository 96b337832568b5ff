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
from tests.alert_peers import HOST, OPERATOR_KEY, Peers, key_for, make_alerts
from tests.service_process import AlertsProcess
from tests.test_alerts_service import Feed, standard_directory

pytestmark = pytest.mark.integration

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 8  # per key and mode: 11 operations x 2 keys x 2 modes x 8 ~ 350 requests
KEYS = {"operator": OPERATOR_KEY, "authority": key_for(HOST)}


@pytest.fixture
def running(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers, feed: Feed
) -> Iterator[tuple[AlertsProcess, str]]:
    process = make_alerts(tmp_path, test_kafka_settings, peers)
    try:
        standard_directory(feed)
        process.start()
        # Something to list, so that list and detail bodies are checked with content.
        feed.change("none", "major")
        yield process, _wait_for_alert(process)
    finally:
        process.stop()


@pytest.fixture
def feed(test_kafka_settings: KafkaSettings, topics: Topics) -> Iterator[Feed]:
    f = Feed(test_kafka_settings, topics)
    try:
        yield f
    finally:
        f.close()


def _wait_for_alert(process: AlertsProcess) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = httpx.get(
            f"{process.url}/v1/alerts", headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=10
        ).json()
        if listed:
            return str(listed[0]["alert_id"])
        time.sleep(0.2)
    raise AssertionError("the seeded change never became an alert")


def exercise(
    operation: Any, who: str, mode: schemathesis.GenerationMode, base_url: str, alert_id: str, failures: list[str]
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
    # Now and then a real alert id, so that detail and acknowledge answer 200 too.
    @given(case=strategy, known_id=st.sampled_from([None, alert_id]))
    def run(case: Any, known_id: str | None) -> None:
        if known_id is not None and case.path_parameters and "alert_id" in case.path_parameters:
            case.path_parameters["alert_id"] = known_id
        response = case.call(base_url=base_url, timeout=10)
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


def test_every_operation_answers_as_documented(running: tuple[AlertsProcess, str]) -> None:
    process, alert_id = running
    document = httpx.get(f"{process.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:
        for who in KEYS:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                exercise(operation, who, mode, process.url, alert_id, failures)
    assert not failures, "\n\n".join(failures)
