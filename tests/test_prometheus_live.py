"""A real Prometheus (the Debian package's binary) scrapes the real services while events
flow end to end, and its HTTP API proves the monitoring set-up: every target is up, every
signal the rules record and every query of the Grafana dashboard returns data, every series
a page reads exists, and the one page this flow should raise (a scorer dead letter) fires
while no other does.

The configuration is deploy/prometheus/prometheus.yml with only the targets (and the
intervals, for a short test) replaced; the queries are read from the rule files and the
dashboard JSON (tests/monitoring_queries.py), so a new rule or panel is proven too."""

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from schemas.events import SHORT_NAMES
from schemas.examples import example_event
from services.apikeys import hash_key
from services.broker.settings import KafkaSettings
from services.ingest.auth import ApiKeyEntry, append_key
from tests.alert_peers import HOST, PLACER_A, PLACER_B, THIRD, Peers, make_alerts
from tests.ingest_process import IngestProcess
from tests.monitoring_queries import PROMETHEUS, RULE_FILES, dashboard_queries, rules, selectors
from tests.service_process import AlertsProcess, ScorerProcess, free_port

pytestmark = pytest.mark.integration

KEY = "cs_test_prometheus_live"
SOURCE = "urn:caresignal:source:prometheus-live"
HEADERS = {"Authorization": f"Bearer {KEY}"}
LOCATION = "1-500000011"
ELSEWHERE = "1-500000012"
# The one page this flow must raise: it sends an event id again with other content.
EXPECTED_PAGES = {"CareSignalScorerDeadLetters"}
PROOF_TIMEOUT_S = 120


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "the prometheus server is not installed: it comes with the Debian package `prometheus` "
            "(`make setup`, or apt-get install prometheus)",
            pytrace=False,
        )
    return found


def live_config(ports: dict[str, int]) -> dict[str, Any]:
    """The deployed configuration, pointed at this test's services and rule files."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(path) for path in RULE_FILES]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(ports), f"the deployed config scrapes {jobs}, the test runs {set(ports)}"
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    return config


@dataclass
class PrometheusServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict[str, Any], timeout_s: float = 60) -> None:
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"prometheus was not ready within {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def wait_until_scraped(self, timeout_s: float = 60) -> None:
        """Until every target has been scraped once: Prometheus applies its targets a few
        seconds after it starts, and the rates below need what happens next."""
        deadline = time.monotonic() + timeout_s
        while True:
            targets = self.api("targets")["activeTargets"]
            if targets and all(t["health"] == "up" for t in targets):
                return
            assert time.monotonic() < deadline, f"targets not all up within {timeout_s}s: {targets}"
            time.sleep(0.3)

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one sample, and not only NaN (a ratio or quantile of nothing)."""
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


def unproven(prometheus: PrometheusServer) -> list[str]:
    """Everything not proven yet, each with why."""
    problems = []
    for target in prometheus.api("targets")["activeTargets"]:
        if target["health"] != "up":
            problems.append(f"target {target['labels']['job']} is {target['health']}: {target['lastError']}")
    for rule in rules():
        if rule.alert:
            prometheus.query(rule.expr)  # evaluates without error
            for selector in selectors(rule.expr):
                if not prometheus.query(selector):
                    problems.append(f"page {rule.name} reads {selector}: no series")
        else:
            result = prometheus.query(rule.expr)
            if not has_data(result):
                problems.append(f"signal {rule.name}: its expression returns no data: {result}")
            if not prometheus.query(rule.name):
                problems.append(f"signal {rule.name}: not recorded yet")
            # The service exports every metric the signal names (under that very name).
            for selector in selectors(rule.expr):
                name = selector.split("{", 1)[0]
                if not prometheus.query(f'count({{__name__="{name}"}})'):
                    problems.append(f"signal {rule.name} reads {name}: no service exports it")
    for panel in dashboard_queries():
        result = prometheus.query(panel.expr)
        if not has_data(result):
            problems.append(f"panel {panel.panel!r} ({panel.expr}): no data: {result}")
    # Once everything sent is processed, each service's own lag is 0 (not 1: offsets are
    # counted as Kafka does, the end offset being the next record's).
    for lag in (
        'caresignal:scoring_consumer_lag:sum{topic="events"}',
        'caresignal:scoring_consumer_lag:sum{topic="risk_changes"}',
        'caresignal:alerts_consumer_lag:sum{topic="risk_changes"}',
    ):
        values = [float(sample["value"][1]) for sample in prometheus.query(lag)]
        if values != [0.0]:
            problems.append(f"{lag} is {values} with everything processed")
    firing = {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"}
    if firing != EXPECTED_PAGES:
        problems.append(f"pages firing: {sorted(firing)}, expected {sorted(EXPECTED_PAGES)}")
    return problems


@pytest.fixture
def services(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers
) -> Iterator[tuple[IngestProcess, ScorerProcess, AlertsProcess]]:
    for part in ("ingest", "scorer", "alerts"):
        (tmp_path / part).mkdir()
    prefix = test_kafka_settings.topic_prefix
    ingest = IngestProcess(topic_prefix=prefix, workdir=tmp_path / "ingest")
    entry = ApiKeyEntry(
        name="live", sha256=hash_key(KEY), source=SOURCE, event_types=sorted(SHORT_NAMES), directory=True
    )
    append_key(ingest.keys_file, entry)
    scorer = ScorerProcess(topic_prefix=prefix, workdir=tmp_path / "scorer")
    alerts = make_alerts(tmp_path / "alerts", test_kafka_settings, peers)
    try:
        yield ingest, scorer, alerts
    finally:
        for service in (alerts, scorer, ingest):
            service.stop()


def test_prometheus_scrapes_every_service_and_every_rule_and_panel_query_returns_data(
    services: tuple[IngestProcess, ScorerProcess, AlertsProcess], peers: Peers, tmp_path: Path
) -> None:
    prometheus_binary()  # fail at once, not after starting the services, if it is missing
    ingest, scorer, alerts = services
    prometheus = PrometheusServer(tmp_path / "prometheus-run")
    prometheus.workdir.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        ingest.start()
        for loc, host in ((LOCATION, HOST), (ELSEWHERE, THIRD)):
            record = {
                "location_id": loc,
                "provider_id": "1-000999777",
                "service_type": "nursing_home",
                "capacity": 45,
                "host_authority": host,
                "name": "Meadow View",
            }
            put = httpx.put(f"{ingest.url}/v1/locations/{loc}", json=record, headers=HEADERS, timeout=30)
            assert put.status_code == 200, put.text
        for authority in (PLACER_A, PLACER_B):
            placement = {"authority": authority, "location_id": LOCATION, "people_placed": 3, "status": "active"}
            put = httpx.put(
                f"{ingest.url}/v1/placements/{authority}/{LOCATION}", json=placement, headers=HEADERS, timeout=30
            )
            assert put.status_code == 200, put.text
        scorer.start()
        alerts.start()
        prometheus.start(live_config({"ingest": ingest.port, "scoring": scorer.port, "alerts": alerts.port}))
        prometheus.wait_until_scraped()
        deadline = time.monotonic() + 60
        while httpx.get(f"{scorer.url}/v1/directory/locations/{LOCATION}", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the scorer never loaded the directory record"
            time.sleep(0.3)

        def post(event: dict[str, Any], status: int = 202) -> None:
            response = httpx.post(f"{ingest.url}/v1/events", json=event, headers=HEADERS, timeout=30)
            assert response.status_code == status, response.text

        # A trickle over several scrapes first: a counter whose first sample already holds
        # every request (a burst between two scrapes) has a rate of 0 and a ratio of NaN.
        for i in range(5):
            trickle = example_event(
                "missed_visit",
                event_id=f"mv-live-trickle-{i}",
                source=SOURCE,
                location_id=ELSEWHERE,
                time=now - timedelta(minutes=2),
                data={"outcome": "late", "minutes_late": 10, "time_critical": False},
            )
            post(trickle)
            time.sleep(1.2)

        # Up to Major and back: an escalation and a de-escalation to three authorities,
        # by webhook and mail.
        concern = example_event(
            "safeguarding_concern",
            event_id="sg-live-1",
            source=SOURCE,
            location_id=LOCATION,
            time=now - timedelta(days=120),
            data={"abuse_type": "neglect", "serious": True, "linked_death": False},
        )
        post(concern)
        for authority in (HOST, PLACER_A, PLACER_B):
            peers.hooks[authority].wait_for(1, timeout=90)
        later = example_event(
            "missed_visit",
            event_id="mv-live-1",
            source=SOURCE,
            location_id=LOCATION,
            time=now - timedelta(minutes=1),
            data={"outcome": "late", "minutes_late": 20, "time_critical": False},
        )
        post(later)
        for authority in (HOST, PLACER_A, PLACER_B):
            peers.hooks[authority].wait_for(2, timeout=90)
        # The concern's id again with other content: the scorer dead-letters it.
        post({**concern, "data": {**concern["data"], "serious": False}})
        post({**later, "data": "not an object"}, status=422)

        started = time.monotonic()
        problems = unproven(prometheus)
        while problems and time.monotonic() - started < PROOF_TIMEOUT_S:
            time.sleep(1)
            problems = unproven(prometheus)
        assert not problems, "not proven in {}s:\n  {}\nprometheus log:\n{}".format(
            PROOF_TIMEOUT_S, "\n  ".join(problems), prometheus.log_tail()
        )
    finally:
        prometheus.stop()
