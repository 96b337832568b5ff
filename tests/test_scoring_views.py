"""The scorer's pages against a real scorer process: they answer, or say when to retry, never 500."""

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.scoring.views import not_ready
from tests.conftest import consume_all
from tests.service_process import ScorerProcess
from tests.test_scoring_worker import START, serious

pytestmark = pytest.mark.integration


@pytest.fixture
def scorer(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ScorerProcess]:
    process = ScorerProcess(topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize("run", range(3))
def test_the_risk_page_never_answers_500_around_the_first_level_change(
    run: int, scorer: ScorerProcess, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    # Until the scorer's producer has metadata for a table's changelog topic, faust's
    # table_route cannot say which worker holds a key (aiokafka's partitioner is handed
    # None): the first pages after a start, or after the first change, met that.
    scorer.start()
    location_id = f"1-5000000{run:02d}"
    producer = KafkaProducer(bootstrap_servers=test_kafka_settings.bootstrap_servers, acks="all")
    answers: list[int] = []
    with httpx.Client(timeout=10) as client:
        url = f"{scorer.url}/v1/locations/{location_id}/risk"
        answers.append(client.get(url).status_code)
        producer.send(
            topics.events, key=location_id.encode(), value=json.dumps(serious("sg", location_id, START)).encode()
        )
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 20
        first_200: float | None = None
        while time.monotonic() < deadline:
            response = client.get(url)
            answers.append(response.status_code)
            if response.status_code == 503:
                assert response.headers.get("Retry-After"), "a 503 says when to retry"
            if response.status_code == 200 and first_200 is None:
                first_200 = time.monotonic()
                deadline = min(deadline, first_200 + 3)  # and a few seconds after the change
    assert 500 not in answers, f"answers: {sorted(set(answers))}\n{scorer.log_tail(80)}"
    assert answers[-1] == 200 and set(answers) <= {200, 404, 503}
    # No directory record was ever written, so nothing was sent to that table's changelog:
    # after the change, the producer's metadata no longer lists it (it asks only for the
    # topics it has sent to). The page must still answer.
    directory = httpx.get(f"{scorer.url}/v1/directory/locations/{location_id}", timeout=10)
    assert directory.status_code == 404, f"{directory.status_code} {directory.text}\n{scorer.log_tail(40)}"


def test_routed_pages_answer_after_the_producer_met_a_topic_created_since_it_started(
    scorer: ScorerProcess, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    # The condition behind the 500s, made certain: once aiokafka's producer sends to a topic
    # missing from its cached metadata, it refreshes the metadata of the topics it has sent
    # to only, and every other topic (the tables' changelogs) drops out of the cache. Here
    # the dead-letter topic is created after the scorer started, and a bad record makes the
    # scorer send to it.
    bootstrap = test_kafka_settings.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topics.dead_letter])
        deadline = time.monotonic() + 30
        while topics.dead_letter in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)
        scorer.start()
        location_id = "1-500000099"
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send(
            topics.events, key=location_id.encode(), value=json.dumps(serious("sg", location_id, START)).encode()
        )
        producer.flush()
        wait = time.monotonic() + 30
        while httpx.get(f"{scorer.url}/v1/locations/{location_id}/risk", timeout=10).status_code != 200:
            assert time.monotonic() < wait, scorer.log_tail(40)
            time.sleep(0.2)
        admin.create_topics([NewTopic(topics.dead_letter, num_partitions=1, replication_factor=1)])
        producer.send(topics.events, key=location_id.encode(), value=b"{not json")
        producer.flush()
        producer.close()
        assert len(consume_all(bootstrap, topics.dead_letter, expect=1, timeout_s=60)) == 1
    finally:
        admin.close()
    answers = {
        path: httpx.get(f"{scorer.url}{path}", timeout=10)
        for path in (f"/v1/directory/locations/{location_id}", f"/v1/locations/{location_id}/risk")
    }
    for path, response in answers.items():
        assert response.status_code != 500, f"{path}: {response.text}\n{scorer.log_tail(40)}"
    assert answers[f"/v1/directory/locations/{location_id}"].status_code == 404
    assert answers[f"/v1/locations/{location_id}/risk"].json()["level"] == "major"


def test_the_board_and_readiness_say_why_the_worker_cannot_answer_for_its_partitions() -> None:
    # The risk board indexes the states of the worker's partitions: during a rebalance or
    # before the tables are recovered those are stale, and it answers 503 like /readyz.
    recovered = asyncio.Event()
    recovered.set()

    def app(rebalancing: bool, completed: asyncio.Event, assignment: set[str]) -> Any:
        return SimpleNamespace(
            rebalancing=rebalancing,
            tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
            consumer=SimpleNamespace(assignment=lambda: assignment),
        )

    assert not_ready(app(False, recovered, {"events-0"})) is None
    assert not_ready(app(True, recovered, {"events-0"})) == "the consumer group is rebalancing"
    assert not_ready(app(False, asyncio.Event(), {"events-0"})) == "recovering state from changelogs"
    assert not_ready(app(False, recovered, set())) == "no partitions assigned to this worker yet"
