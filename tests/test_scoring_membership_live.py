"""A scorer whose topics the broker does not list yet joins its consumer group only once it
does, and says why meanwhile (services/scoring/membership.py), on the real broker."""

import time
import uuid
from pathlib import Path

import httpx
import pytest
from kafka import KafkaAdminClient

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.broker.topics import create_topics
from tests.service_process import ScorerProcess

pytestmark = pytest.mark.integration


def delete_topics(bootstrap_servers: str, prefix: str, app_id: str) -> None:
    """The app's topics and those the scorer created for itself (named after its app id,
    or its repartition topic after the risk-change topic)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        ours = [t for t in admin.list_topics() if t.startswith(f"{app_id}-") or f"{prefix}." in t]
        if ours:
            admin.delete_topics(ours)
    finally:
        admin.close()


def readiness(scorer: ScorerProcess) -> tuple[int, str]:
    response = httpx.get(f"{scorer.url}/readyz", timeout=2)
    return response.status_code, str(response.json()["status"])


def test_a_scorer_started_before_its_topics_joins_once_they_are_listed(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics.with_prefix(prefix)
    scorer = ScorerProcess(topic_prefix=prefix, workdir=tmp_path)
    try:
        # Before: Faust skipped the missing topics, assigned its changelogs and said ready
        # while it could read no event.
        with pytest.raises(RuntimeError, match="not ready within"):
            scorer.start(timeout_s=15)
        code, status = readiness(scorer)
        assert code == 503
        assert "waiting for the broker to list" in status
        assert topics.events in status or "more" in status

        create_topics(kafka_settings.bootstrap_servers, topics)
        deadline = time.monotonic() + 30
        while (code, status) != (200, "ready") and time.monotonic() < deadline:
            time.sleep(0.5)
            code, status = readiness(scorer)
        assert (code, status) == (200, "ready"), scorer.log_tail()
        log = scorer.log_tail(400)
        assert "joining the consumer group" in log
        assert "Ignoring missing topic" not in log
    finally:
        scorer.stop()
        delete_topics(kafka_settings.bootstrap_servers, prefix, scorer.app_id)
