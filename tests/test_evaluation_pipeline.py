"""The evaluation's replay against the real pipeline: a small simulated world sent through
ingest (a key per source) to Kafka, scored by the real scorer process and alerted by the
real alert service, gives the level changes the pure replay gives for the same records."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from schemas.risk import LevelChange
from services.broker.settings import KafkaSettings
from services.evaluation.replay import replay
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyEntry, ApiKeyRegistry, hash_key
from services.ingest.settings import IngestSettings
from services.scoring.policy import parse_policy
from services.simulator.config import SimulationConfig
from services.simulator.generator import all_sources
from services.simulator.run import build_world, simulate
from services.simulator.sinks import IngestSink
from tests.alert_peers import OPERATOR_KEY, Peers, make_alerts
from tests.conftest import consume_all
from tests.service_process import ScorerProcess, committed_reader, read_until
from tests.test_evaluation_replay import POLICY

pytestmark = pytest.mark.integration

# Recent: ingest refuses events older than its 400-day retention without a backfill key.
WORLD = SimulationConfig(seed=3, locations=12, days=60, start=date.today() - timedelta(days=75))
# The replay test's policy (a trigger and a pattern, no peer rules: their sums cross
# partitions, whose interleaving in the scorer is the broker's), plus a low bar for Minor
# so that the run has changes both ways.
PIPELINE_POLICY = (
    POLICY
    + """
  - id: complaints
    description: Two complaints in 30 days
    level: minor
    window_days: 30
    enter_count: 2
    when: [{type: complaint}]
"""
)


@dataclass
class QuietScorer(ScorerProcess):
    """A scorer that sends no wall-clock time signals and uses the given policy."""

    policy_file: Path = Path()

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "CARESIGNAL_SCORING_CLOCK_INTERVAL_S": "0",
            "CARESIGNAL_SCORING_POLICY_FILE": str(self.policy_file),
        }


@pytest.fixture
def scorer(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[QuietScorer]:
    (tmp_path / "scorer").mkdir()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(PIPELINE_POLICY)
    process = QuietScorer(
        topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path / "scorer", policy_file=policy_file
    )
    try:
        yield process
    finally:
        process.stop()


def ingest_keys() -> tuple[dict[str, str], ApiKeyRegistry]:
    population, _ = build_world(WORLD)
    sources = all_sources(population)
    keys = {source: f"cs_eval{i:04d}" for i, source in enumerate(sorted(sources))}
    entries = [
        ApiKeyEntry(name=f"eval{i}", sha256=hash_key(keys[s]), source=s, event_types=sorted(sources[s]))
        for i, s in enumerate(sorted(sources))
    ]
    entries.append(
        ApiKeyEntry(
            name="evaldir", sha256=hash_key("cs_eval_dir"), source="urn:caresignal:source:directory", directory=True
        )
    )
    return keys, ApiKeyRegistry(entries)


def test_the_real_pipeline_makes_the_changes_the_replay_makes(
    scorer: QuietScorer, test_kafka_settings: KafkaSettings, peers: Peers, tmp_path: Path
) -> None:
    (tmp_path / "alerts").mkdir()
    alerts = make_alerts(tmp_path / "alerts", test_kafka_settings, peers)
    keys, registry = ingest_keys()
    bootstrap = test_kafka_settings.bootstrap_servers
    topics = test_kafka_settings.topics
    try:
        scorer.start()
        alerts.start()
        with TestClient(create_app(IngestSettings(), test_kafka_settings, registry)) as client:
            run = simulate(
                WORLD,
                IngestSink("http://testserver", keys, "cs_eval_dir", batch=100, client=client),
                publish_directory=True,
            )

        # The replay reads the records as they lie on the topic: each partition in order,
        # which is all a location's changes depend on without peer rules.
        records = consume_all(bootstrap, topics.events, expect=run.events)
        assert len(records) == run.events
        records.sort(key=lambda r: (r.partition, r.offset))
        locations = {s.location_id: s.location for s in run.population.sites}
        expected = replay(
            locations,
            (json.loads(r.value) for r in records),
            parse_policy(PIPELINE_POLICY),
            signal_hours=None,  # the scorer sends none (clock interval 0)
            organisations=False,
        ).changes
        wanted = sorted((c.subject, c.sequence, c.new.name) for c in expected)
        assert len(wanted) >= 4 and {level for *_, level in wanted} > {"none"}

        consumer = committed_reader(bootstrap, topics.risk_changes)
        try:

            def location_changes(values: list[bytes]) -> list[LevelChange]:
                parsed = [LevelChange.model_validate_json(v) for v in values]
                return [c for c in parsed if c.scope == "location"]

            values = read_until(consumer, lambda vs: len(location_changes(vs)) >= len(wanted), timeout_s=90)
        finally:
            consumer.close()
        published = location_changes(values)
        got = sorted((c.location_id or "", c.sequence, c.new_level.value) for c in published)
        assert got == wanted

        # One alert per location change, with the change's id.
        headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        deadline = time.monotonic() + 60
        while True:
            listed = httpx.get(f"{alerts.url}/v1/alerts", params={"limit": 500}, headers=headers, timeout=10).json()
            mine = [a for a in listed if a["scope"] == "location" and a["kind"] in ("escalation", "de-escalation")]
            if len(mine) >= len(wanted) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sorted(a["change_id"] for a in mine) == sorted(c.change_id for c in published)
    finally:
        alerts.stop()
