"""API keys apply within seconds, without a restart, in ingest and in alerts: the key files
are re-read when they change; a broken edit keeps the last good keys."""

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from schemas.examples import example_event
from services.alerts.auth import AlertKeyEntry, AlertKeys, append_alert_key
from services.apikeys import ApiKeyFileError, hash_key
from services.broker.settings import KafkaSettings
from services.ingest.auth import ApiKeyEntry, ApiKeyRegistry, append_key
from tests.alert_peers import Peers, make_alerts
from tests.ingest_process import IngestProcess
from tests.service_process import ROOT

SOURCE = "urn:caresignal:source:reload"


def ingest_entry(name: str, key: str) -> ApiKeyEntry:
    return ApiKeyEntry(name=name, sha256=hash_key(key), source=SOURCE, event_types=["complaint"])


def test_ingest_registry_follows_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys.toml"
    append_key(path, ingest_entry("first", "cs_first"))
    registry = ApiKeyRegistry.watch(path, interval_s=0)
    assert registry.authenticate("cs_first") is not None and registry.authenticate("cs_second") is None

    append_key(path, ingest_entry("second", "cs_second"))
    assert registry.authenticate("cs_second") is not None

    good = path.read_text()
    with caplog.at_level(logging.WARNING, logger="services.apikeys"):
        path.write_text(good + "\n[[key]]\nname = 'broken'\n")
        assert registry.authenticate("cs_first") is not None and registry.authenticate("cs_second") is not None
    assert "keeping the last good keys" in caplog.text

    # A key taken out of the file stops working.
    path.write_text(good.split("[[key]]")[0] + "[[key]]" + good.split("[[key]]")[2])
    assert registry.authenticate("cs_first") is None and registry.authenticate("cs_second") is not None


def test_the_file_is_looked_at_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    append_key(path, ingest_entry("first", "cs_first"))
    registry = ApiKeyRegistry.watch(path, interval_s=0.5)
    append_key(path, ingest_entry("second", "cs_second"))
    assert registry.authenticate("cs_second") is None  # checked less than 0.5 s ago
    time.sleep(0.6)
    assert registry.authenticate("cs_second") is not None


def test_a_service_does_not_start_on_a_broken_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ApiKeyFileError, match="does not exist"):
        ApiKeyRegistry.watch(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[[key]]\nname = 1\n")
    with pytest.raises(ApiKeyFileError, match="invalid"):
        AlertKeys.watch(tmp_path / "bad.toml")


def test_alert_keys_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alert-keys.toml"
    append_alert_key(path, AlertKeyEntry(name="ops", sha256=hash_key("cs_ops"), operator=True))
    keys = AlertKeys.watch(path, interval_s=0)
    assert keys.authenticate("cs_surrey") is None
    append_alert_key(path, AlertKeyEntry(name="surrey", sha256=hash_key("cs_surrey"), authority="E10000030"))
    viewer = keys.authenticate("cs_surrey")
    assert viewer is not None and viewer.authority == "E10000030"
    path.write_text("this is not toml")
    assert keys.authenticate("cs_surrey") is not None
    path.write_text("")
    assert keys.authenticate("cs_surrey") is None and keys.authenticate("cs_ops") is None


# --- real processes ---------------------------------------------------------------------


def cli(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def seconds_until(check: Callable[[], bool], timeout_s: float = 10) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"not applied within {timeout_s}s"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def ingest(tmp_path: Path, test_kafka_settings: KafkaSettings) -> Iterator[IngestProcess]:
    process = IngestProcess(topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path)
    append_key(process.keys_file, ingest_entry("first", "cs_first"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.integration
def test_a_key_created_while_ingest_runs_applies_within_seconds(ingest: IngestProcess, tmp_path: Path) -> None:
    clear = tmp_path / "new-key"
    cli(
        *("apikey", "create", "--name", "newcomer", "--source", SOURCE, "--types", "complaint"),
        *("--file", str(ingest.keys_file), "--write-key-to", str(clear)),
    )
    key = clear.read_text().strip()

    def accepted() -> bool:
        response = httpx.post(
            f"{ingest.url}/v1/events",
            json=example_event("complaint", event_id="reload-1", source=SOURCE),
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code in (202, 401), response.text
        return response.status_code == 202

    assert seconds_until(accepted) < 3

    # Revoked by taking it out of the file: refused as fast.
    ingest.keys_file.write_text(ingest.keys_file.read_text().split('[[key]]\nname = "newcomer"')[0])
    assert seconds_until(lambda: not accepted()) < 3


@pytest.mark.integration
def test_a_key_created_while_alerts_runs_applies_within_seconds(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers
) -> None:
    alerts = make_alerts(tmp_path, test_kafka_settings, peers)
    alerts.start()
    try:
        clear = tmp_path / "ops-key"
        cli(
            *("apikey", "create", "--for", "alerts", "--name", "new-ops", "--operator"),
            *("--file", str(alerts.keys_file), "--write-key-to", str(clear)),
        )
        key = clear.read_text().strip()

        def answered() -> bool:
            response = httpx.get(f"{alerts.url}/v1/alerts", headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert response.status_code in (200, 401), response.text
            return response.status_code == 200

        assert seconds_until(answered) < 3
    finally:
        alerts.stop()
