"""Secured Kafka, end to end: a broker of this module's own (other ports, its own data)
with a SASL_SSL listener beside its PLAINTEXT one. The listener has a SCRAM-SHA-512 user
and a PLAIN user, a certificate from a CA the test makes, and requires client
certificates, so every client library proves it sends the certificate too.

One event goes from ingest through the scorer (Faust over aiokafka) and the alert
service (kafka-python, logging in with PLAIN) to a webhook, all over that listener, with
topics provisioned by `caresignal topics create` over it. A wrong password is reported as
an authentication failure, quickly, by ingest, the CLI, the scorer and the alert service.
"""

import logging
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import faust
import httpx
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient
from pydantic import ValidationError

from schemas.examples import example_event
from services.broker.connection_check import connection_problem
from services.broker.local import LocalBroker, SaslSslListener
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.alert_peers import HOST, Peers, make_alerts
from tests.conftest import KEYS
from tests.service_process import ROOT, ScorerProcess, free_port
from tests.test_pipeline_e2e import wait_for_status
from tests.tls_material import TlsMaterial, make_tls_material

pytestmark = pytest.mark.integration

SCRAM_USER, SCRAM_PASSWORD = "caresignal", "scram-Secret-7f3a"
PLAIN_USER, PLAIN_PASSWORD = "managed-service", "plain-Secret-91c2"
WRONG_PASSWORD = "not-the-password-5d1e"
SOURCE = KEYS["all"][1]
HEADERS = {"Authorization": f"Bearer {KEYS['all'][0]}"}
LOCATION = "1-510000001"


@dataclass
class SecuredCluster:
    broker: LocalBroker
    listener: SaslSslListener
    tls: TlsMaterial
    password_file: Path

    def env(self, mechanism: str = "SCRAM-SHA-512", password: str | None = None) -> dict[str, str]:
        """The environment an operator would set; SCRAM's password comes from a file."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.listener.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": SCRAM_USER if mechanism == "SCRAM-SHA-512" else PLAIN_USER,
            "KAFKA_SSL_CAFILE": str(self.tls.ca_cert),
            "KAFKA_SSL_CERTFILE": str(self.tls.client_cert),
            "KAFKA_SSL_KEYFILE": str(self.tls.client_key),
        }
        if password is not None:
            env["KAFKA_SASL_PASSWORD"] = password
        elif mechanism == "SCRAM-SHA-512":
            env["KAFKA_SASL_PASSWORD_FILE"] = str(self.password_file)
        else:
            env["KAFKA_SASL_PASSWORD"] = PLAIN_PASSWORD
        return env

    def settings(self, topic_prefix: str = "", **env: str) -> KafkaSettings:
        return KafkaSettings(topic_prefix=topic_prefix, **env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, kafka_settings: KafkaSettings) -> Iterator[SecuredCluster]:
    # kafka_settings: the session's broker resolves the jars this one shares; its ports are not touched.
    home = tmp_path_factory.mktemp("secured-kafka")
    tls = make_tls_material(home / "tls")
    listener = SaslSslListener(
        port=free_port(),
        keystore=tls.broker_keystore,
        scram_users={SCRAM_USER: SCRAM_PASSWORD},
        plain_users={PLAIN_USER: PLAIN_PASSWORD},
        client_ca=tls.ca_cert,
    )
    broker = LocalBroker(home / "kafka", port=free_port(), controller_port=free_port(), heap="384m", sasl_ssl=listener)
    password_file = home / "kafka-password"
    password_file.write_text(SCRAM_PASSWORD + "\n")
    password_file.chmod(0o600)
    broker.start()
    try:
        yield SecuredCluster(broker, listener, tls, password_file)
    finally:
        broker.stop(hard=True)


def caresignal(*args: str, env: dict[str, str], timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@dataclass
class SecuredScorer(ScorerProcess):
    kafka_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.kafka_env}


def logs_of(directory: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(directory.glob("*.log")))


def test_an_event_goes_from_ingest_through_the_scorer_to_a_webhook_over_sasl_ssl(
    cluster: SecuredCluster, api_keys: ApiKeyRegistry, peers: Peers, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    scram = cluster.env("SCRAM-SHA-512")
    created = caresignal("topics", "create", env={**scram, "CARESIGNAL_TOPIC_PREFIX": prefix})
    assert created.returncode == 0, created.stderr
    kafka = cluster.settings(prefix, **scram)
    assert f"created {kafka.topics.events}" in created.stdout

    (tmp_path / "scorer").mkdir()
    (tmp_path / "alerts").mkdir()
    scorer = SecuredScorer(topic_prefix=prefix, workdir=tmp_path / "scorer", kafka_env=scram)
    alerts = make_alerts(tmp_path / "alerts", kafka, peers)
    alerts.settings.update(cluster.env("PLAIN"))  # a managed service's PLAIN login, over TLS
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with TestClient(create_app(IngestSettings(), kafka, api_keys)) as ingest:
            assert ingest.get("/readyz").status_code == 200
            location = {
                "location_id": LOCATION,
                "provider_id": "1-000999777",
                "service_type": "nursing_home",
                "capacity": 40,
                "host_authority": HOST,
                "name": "Harbour Lodge",
            }
            assert ingest.put(f"/v1/locations/{LOCATION}", json=location, headers=HEADERS).status_code == 200
            scorer.start()
            alerts.start()
            wait_for_status(f"{scorer.url}/v1/directory/locations/{LOCATION}", 200)
            concern = example_event(
                "safeguarding_concern",
                event_id="sg-secured-1",
                source=SOURCE,
                location_id=LOCATION,
                time=now - timedelta(hours=1),
                data={"abuse_type": "neglect", "serious": True, "linked_death": False},
            )
            assert ingest.post("/v1/events", json=concern, headers=HEADERS).status_code == 202
            [delivery] = peers.hooks[HOST].wait_for(1, timeout=90)
    finally:
        scorer.stop()
        alerts.stop()
    body = delivery.body["data"]
    assert (body["kind"], body["new_level"], body["location_id"]) == ("escalation", "major", LOCATION)
    assert body["reasons"][0]["evidence_ids"] == ["sg-secured-1"]
    # Neither service wrote a password anywhere in its log.
    for directory in (tmp_path / "scorer", tmp_path / "alerts"):
        text = logs_of(directory)
        assert text, f"no log in {directory}"
        assert SCRAM_PASSWORD not in text and PLAIN_PASSWORD not in text


def test_a_wrong_password_is_named_as_an_authentication_failure_quickly(
    cluster: SecuredCluster,
    api_keys: ApiKeyRegistry,
    peers: Peers,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = cluster.env("SCRAM-SHA-512", password=WRONG_PASSWORD)

    # The CLI's admin command: non-zero, with the reason, not a traceback after a timeout.
    started = time.monotonic()
    topics = caresignal("topics", "create", env=wrong)
    assert topics.returncode == 1
    assert "authentication failed" in topics.stderr and f"user {SCRAM_USER!r}" in topics.stderr
    assert "Traceback" not in topics.stderr and WRONG_PASSWORD not in topics.stdout + topics.stderr
    assert time.monotonic() - started < 20

    # An importer too.
    imported = caresignal("directory", "import", str(ROOT / "deploy" / "compose" / "demo-locations.csv"), env=wrong)
    assert imported.returncode == 1 and "Traceback" not in imported.stderr
    assert "authentication failed" in imported.stderr

    # PLAIN, as a managed service would use it: `kafka status` says why it cannot answer.
    status = caresignal("kafka", "status", env=cluster.env("PLAIN", password=WRONG_PASSWORD))
    assert status.returncode == 1
    assert "NOT answering" in status.stdout and "authentication failed" in status.stderr

    # Ingest starts (its health answers) but is not ready, and its log names the reason.
    caplog.set_level(logging.WARNING, logger="services.ingest.publisher")
    kafka = cluster.settings(**wrong)
    started = time.monotonic()
    with TestClient(create_app(IngestSettings(), kafka, api_keys)) as ingest:
        assert ingest.get("/healthz").status_code == 200
        assert ingest.get("/readyz").status_code == 503
    assert time.monotonic() - started < 15
    assert any("authentication failed" in r.getMessage() for r in caplog.records), caplog.text
    assert WRONG_PASSWORD not in caplog.text

    # The scorer refuses to start and says why.
    scorer = caresignal("scorer", env={**wrong, "CARESIGNAL_SCORING_DATA_DIR": str(tmp_path / "scorer-data")})
    assert scorer.returncode == 1
    assert "authentication failed" in scorer.stderr and "the scorer did not start" in scorer.stderr

    # The alert service keeps its API up, is not ready, and logs the reason while it retries.
    (tmp_path / "alerts").mkdir()
    alerts = make_alerts(tmp_path / "alerts", cluster.settings(), peers)
    alerts.settings.update(cluster.env("PLAIN", password=WRONG_PASSWORD))
    log = (tmp_path / "alerts" / "alerts-1.log").open("wb")
    alerts.process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "alerts"],
        cwd=ROOT,
        env=alerts.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while "authentication failed" not in alerts.log_tail() and time.monotonic() < deadline:
            assert alerts.process.poll() is None, alerts.log_tail()
            time.sleep(0.3)
        assert "authentication failed" in alerts.log_tail(), alerts.log_tail()
        ready = httpx.get(f"{alerts.url}/readyz", timeout=5)
        assert ready.status_code == 503 and "KafkaConnectionFailed" in ready.text
        assert WRONG_PASSWORD not in alerts.log_tail(lines=10_000)
    finally:
        alerts.stop()


def test_settings_refuse_contradictions_and_never_show_the_password(tmp_path: Path) -> None:
    base = {"KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9096", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
    cases = {
        "needs KAFKA_SASL_USERNAME": {**base, "KAFKA_SASL_PASSWORD": WRONG_PASSWORD},
        "needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE": {**base, "KAFKA_SASL_USERNAME": "u"},
        "not both": {
            **base,
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": WRONG_PASSWORD,
            "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "pw"),
        },
        "KAFKA_SASL_PASSWORD_FILE=": {
            **base,
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing"),
        },
        "KAFKA_SSL_CAFILE=": {
            **base,
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": WRONG_PASSWORD,
            "KAFKA_SSL_CAFILE": str(tmp_path / "nope.pem"),
        },
        "does not use SASL": {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "KAFKA_SASL_USERNAME": "u"},
        "does not use TLS": {
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": WRONG_PASSWORD,
            "KAFKA_SSL_CAFILE": str(tmp_path / "nope.pem"),
        },
        "needs KAFKA_BOOTSTRAP_SERVERS": {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": WRONG_PASSWORD,
        },
    }
    for expected, env in cases.items():
        with pytest.raises(ValidationError) as raised:
            KafkaSettings(**env)
        assert expected in str(raised.value), (expected, str(raised.value))
        assert WRONG_PASSWORD not in str(raised.value)

    # A command stops at once with the same message, not a traceback, and without the password.
    refused = caresignal("topics", "create", env=cases["needs KAFKA_SASL_USERNAME"])
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "needs KAFKA_SASL_USERNAME" in refused.stderr and WRONG_PASSWORD not in refused.stderr
    unknown = caresignal("topics", "create", env={"KAFKA_SECURITY_PROTOCOL": "TLS"})
    assert unknown.returncode != 0 and "KAFKA_SECURITY_PROTOCOL: Input should be" in unknown.stderr

    # The development default is unchanged: PLAINTEXT, no credentials for any library.
    plain = KafkaSettings()
    assert plain.security.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert plain.security.faust_credentials() is None

    # SSL without SASL: a TLS context for each library, faust's SSLCredentials.
    tls = make_tls_material(tmp_path / "tls")
    tls_only = KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS="k:9093", KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(tls.ca_cert)
    ).security
    assert isinstance(tls_only.faust_credentials(), faust.SSLCredentials)
    for kwargs in (tls_only.kafka_python(), tls_only.aiokafka()):
        assert kwargs["security_protocol"] == "SSL" and isinstance(kwargs["ssl_context"], ssl.SSLContext)
        assert "sasl_mechanism" not in kwargs

    secured = KafkaSettings(**{**base, "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": WRONG_PASSWORD})
    security = secured.security
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    kwargs = security.kafka_python()
    assert kwargs["sasl_plain_password"] == WRONG_PASSWORD  # what the library sends
    for shown in (repr(secured), repr(security), repr(kwargs), repr(credentials), security.describe()):
        assert WRONG_PASSWORD not in shown, shown


def test_the_client_libraries_debug_logs_do_not_print_the_password(
    cluster: SecuredCluster, caplog: pytest.LogCaptureFixture
) -> None:
    # kafka-python logs an admin client's whole configuration at debug level, and every
    # request and the bytes sent (a PLAIN login's password among them).
    caplog.set_level(logging.DEBUG, logger="kafka")
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    security = cluster.settings(**cluster.env("PLAIN")).security
    admin = KafkaAdminClient(bootstrap_servers=cluster.listener.bootstrap_servers, **security.kafka_python())
    try:
        assert admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    # aiokafka's connection, as the scorer's and the connection check's
    assert connection_problem(cluster.listener.bootstrap_servers, security) is None
    # Debug logging was on (the configuration dump, redacted) and both logins happened.
    assert "'sasl_plain_password': '**********'" in caplog.text
    assert f"Authenticated as {PLAIN_USER} via PLAIN" in caplog.text
    assert PLAIN_PASSWORD not in caplog.text


async def test_the_connection_check_works_from_a_thread_that_runs_an_event_loop(kafka_settings: KafkaSettings) -> None:
    # A synchronous caller driven from a loop (Playwright's sync API in the browser tests
    # creates topics this way): asyncio.run would refuse a second loop in this thread.
    assert connection_problem(kafka_settings.bootstrap_servers, kafka_settings.security) is None
