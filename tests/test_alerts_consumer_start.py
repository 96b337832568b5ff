"""The alert service's risk-change consumer consumes, or says on /readyz why it cannot.

The real service process against the real broker, with topics of each test's own: the
risk-change topic created only after the service started, and deleted and created again
under a running service. Each time the service must say it is not ready, and why, for as
long as it has nothing to read, and then consume by itself: no restart, no operator.
"""

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import SPECS, Topics
from services.broker.settings import KafkaSettings
from services.broker.topics import topic_config
from tests.alert_peers import HOST, Peers, make_alerts
from tests.service_process import ROOT, AlertsProcess
from tests.test_alerts_service import Feed

pytestmark = pytest.mark.integration

Readiness = tuple[int, dict[str, Any]]


@pytest.fixture
def own_topics(kafka_settings: KafkaSettings) -> Iterator[Topics]:
    """Names for this test's topics; the test creates them, this deletes whatever exists."""
    topics = Topics.with_prefix(f"t{uuid.uuid4().hex[:10]}")
    yield topics
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    try:
        mine = [name for name in topics.by_role().values() if name in set(admin.list_topics())]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def create(bootstrap: str, topics: Topics, *roles: str, timeout_s: float = 60) -> None:
    """Create the topics of `roles`, waiting out a deletion of the same name still under way."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    names = topics.by_role()
    deadline = time.monotonic() + timeout_s
    try:
        for role in roles:
            spec = SPECS[role]  # type: ignore[index]
            new = NewTopic(names[role], spec.partitions, 1, topic_configs=topic_config(role))  # type: ignore[index]
            while True:
                try:
                    admin.create_topics([new])
                    break
                except TopicAlreadyExistsError:
                    # Kafka deletes a topic asynchronously; its name is free again soon after.
                    assert time.monotonic() < deadline, f"{new.name} still exists {timeout_s:g}s after its deletion"
                    time.sleep(0.5)
    finally:
        admin.close()


def delete(bootstrap: str, *names: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics(list(names))
    finally:
        admin.close()


def spawn(process: AlertsProcess) -> None:
    """Start the service without waiting for it to be ready (it is not meant to be, yet)."""
    process.starts += 1
    log = (process.workdir / f"{process.command}-{process.starts}.log").open("wb")
    process.process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", process.command],
        cwd=ROOT,
        env=process.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def readiness(process: AlertsProcess) -> Readiness | None:
    try:
        answer = httpx.get(f"{process.url}/readyz", timeout=2)
    except httpx.HTTPError:
        return None  # not listening yet
    return answer.status_code, answer.json()


def wait_readiness(process: AlertsProcess, done: Callable[[Readiness], bool], timeout_s: float) -> Readiness:
    """The first /readyz answer for which `done` holds; on timeout, the last one, named."""
    deadline = time.monotonic() + timeout_s
    last: Readiness | None = None
    while time.monotonic() < deadline:
        assert process.process is not None and process.process.poll() is None, process.log_tail()
        last = readiness(process) or last
        if last is not None and done(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"/readyz after {timeout_s:g}s: {last}\n{process.log_tail()}")


def says_topic_missing(topic: str) -> Callable[[Readiness], bool]:
    def check(answer: Readiness) -> bool:
        status, body = answer
        return status == 503 and any(topic in problem for problem in body.get("problems", []))

    return check


START_UP = ("loading the directory", "looking up risk-change topic")


def answered(answer: Readiness) -> bool:
    """Ready, or not ready for a reason other than start-up work."""
    status, body = answer
    return status == 200 or any(not any(s in p for s in START_UP) for p in body.get("problems", []))


def assigned_once_with_every_partition(log: str, topic: str) -> None:
    """The group's first rebalance gave the topic's 6 partitions: it was not made from
    metadata that lacked the topic, and no second rebalance had to correct it."""
    assert "No partition metadata" not in log, log
    assignments = [line for line in log.splitlines() if "group assigned" in line]
    assert len(assignments) == 1 and f"6 partition(s) of {topic}" in assignments[0], log


def ready(answer: Readiness) -> bool:
    return answer[0] == 200


def test_a_service_started_before_its_risk_change_topic_says_so_and_consumes_once_it_exists(
    kafka_settings: KafkaSettings, own_topics: Topics, peers: Peers, tmp_path: Path
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    create(bootstrap, own_topics, *(role for role in own_topics.by_role() if role != "risk_changes"))
    kafka = kafka_settings.model_copy(update={"topic_prefix": own_topics.events.split(".", 1)[0]})
    feed = Feed(kafka, own_topics)
    alerts = make_alerts(tmp_path, kafka, peers)
    try:
        feed.location()
        spawn(alerts)
        # Before: /readyz said 200 here, with nothing to read and nothing ever read.
        status, body = wait_readiness(alerts, answered, timeout_s=60)
        assert says_topic_missing(own_topics.risk_changes)((status, body)), f"/readyz: {status} {body}"
        time.sleep(3)  # and it keeps saying so: this is not a start-up moment
        assert says_topic_missing(own_topics.risk_changes)(readiness(alerts) or (0, {}))

        create(bootstrap, own_topics, "risk_changes")
        wait_readiness(alerts, ready, timeout_s=30)
        feed.change("none", "major")
        [delivery] = peers.hooks[HOST].wait_for(1, timeout=30)
        assert delivery.body["data"]["new_level"] == "major"
        assigned_once_with_every_partition(alerts.log_tail(lines=400), own_topics.risk_changes)
    finally:
        alerts.stop()
        feed.close()


def test_a_risk_change_topic_deleted_and_created_again_is_reported_and_then_read(
    kafka_settings: KafkaSettings, own_topics: Topics, peers: Peers, tmp_path: Path
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    create(bootstrap, own_topics, *own_topics.by_role())
    kafka = kafka_settings.model_copy(update={"topic_prefix": own_topics.events.split(".", 1)[0]})
    feed = Feed(kafka, own_topics)
    alerts = make_alerts(tmp_path, kafka, peers)
    hook = peers.hooks[HOST]
    try:
        feed.location()
        alerts.start()
        feed.change("none", "major")
        hook.wait_for(1, timeout=30)
        # Before: "No partition metadata" at the first rebalance of most starts, the topic
        # there all along; a second rebalance ~0.1 s later corrected it.
        assigned_once_with_every_partition(alerts.log_tail(lines=400), own_topics.risk_changes)

        delete(bootstrap, own_topics.risk_changes)
        wait_readiness(alerts, says_topic_missing(own_topics.risk_changes), timeout_s=30)

        create(bootstrap, own_topics, "risk_changes")
        wait_readiness(alerts, ready, timeout_s=30)
        feed.change("major", "none")
        feed.change("none", "major")
        # Both changes on the new topic are read: the old topic's offsets do not skip them.
        deliveries = hook.wait_for(3, timeout=30)
        assert [d.body["data"]["new_level"] for d in deliveries] == ["major", "none", "major"]
    finally:
        alerts.stop()
        feed.close()
