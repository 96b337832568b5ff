"""The operator commands against the real broker."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from schemas.topics import SPECS, Topics
from services.alerts.auth import AlertKeys
from services.broker.settings import KafkaSettings
from services.broker.topics import create_topics
from services.cli import main
from services.ingest.auth import ApiKeyRegistry
from tests.conftest import consume_all

pytestmark = pytest.mark.integration


def test_topics_create_is_idempotent_and_shapes_topics(kafka_settings: KafkaSettings, topics: Topics) -> None:
    again = create_topics(kafka_settings.bootstrap_servers, topics)
    assert again.created == [] and len(again.existing) == len(SPECS)
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    try:
        described = {t["name"]: t for t in admin.describe_topics([topics.events, topics.locations])}
        assert len(described[topics.events]["partitions"]) == SPECS["events"].partitions
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.locations)])
        assert configs["topic"][topics.locations]["cleanup.policy"]["value"] == "compact"
    finally:
        admin.close()


def test_topics_cli_uses_the_prefix(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", "clitest")
    assert main(["topics", "create"]) == 0
    assert main(["topics", "create"]) == 0
    out = capsys.readouterr().out
    assert "exists  clitest.caresignal.events.v1" in out


def test_directory_import_validates_every_row_before_publishing(
    tmp_path: Path, test_kafka_settings: KafkaSettings, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", test_kafka_settings.topic_prefix)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "location_id,provider_id,service_type,capacity,host_authority,name\n"
        "1-101234567,1-000111222,care_home,40,E10000030,Oak House\n"
        "1-101234568,1-000111222,spaceship,40,E10000030,Elm House\n"
    )
    assert main(["directory", "import", str(bad)]) == 2
    good = tmp_path / "locations.csv"
    good.write_text(
        "location_id,provider_id,service_type,capacity,host_authority,name\n"
        "1-101234567,1-000111222,care_home,40,E10000030,Oak House\n"
        "1-101234568,1-000111222,home_care,120,E06000036,\n"
    )
    assert main(["directory", "import", str(good)]) == 0
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.locations, expect=2)
    assert sorted(r.key for r in records) == [b"1-101234567", b"1-101234568"]
    assert {json.loads(r.value)["capacity"] for r in records} == {40, 120}

    placements = tmp_path / "placements.csv"
    placements.write_text("authority,location_id,people_placed,status\nE06000036,1-101234567,3,active\n")
    assert main(["directory", "import", str(placements)]) == 0
    [placement] = consume_all(test_kafka_settings.bootstrap_servers, topics.placements, expect=1)
    assert placement.key == b"1-101234567/E06000036"


def test_apikey_create_stores_only_the_hash(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    clear = tmp_path / "key.txt"
    assert (
        main(
            [
                "apikey",
                "create",
                "--name",
                "kent-ecm",
                "--source",
                "urn:caresignal:source:kent-ecm",
                "--types",
                "missed_visit",
                "--file",
                str(keys),
                "--write-key-to",
                str(clear),
            ]
        )
        == 0
    )
    key = clear.read_text().strip()
    assert key not in keys.read_text()
    caller = ApiKeyRegistry.load(keys).authenticate(key)
    assert caller is not None and caller.source == "urn:caresignal:source:kent-ecm"
    assert caller.event_types == {"uk.caresignal.missed_visit.v1"} and not caller.directory
    assert (
        main(
            [
                "apikey",
                "create",
                "--name",
                "kent-ecm",
                "--source",
                "urn:x:y",
                "--types",
                "complaint",
                "--file",
                str(keys),
            ]
        )
        == 2
    )
    assert (
        main(["apikey", "create", "--name", "x", "--source", "urn:x:y", "--types", "gossip", "--file", str(keys)]) == 2
    )


def test_kafka_status_command_reports_the_running_broker() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "kafka", "status"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "answering" in result.stdout


def test_alert_keys_are_per_authority_or_operator(tmp_path: Path) -> None:
    keys = tmp_path / "alert-keys.toml"
    common = ["apikey", "create", "--for", "alerts", "--file", str(keys)]
    assert main([*common, "--name", "surrey", "--authority", "E10000030", "--write-key-to", str(tmp_path / "a")]) == 0
    assert main([*common, "--name", "ops", "--operator", "--write-key-to", str(tmp_path / "o")]) == 0
    assert main([*common, "--name", "both", "--operator", "--authority", "E10000030"]) == 2
    assert main([*common, "--name", "neither"]) == 2
    assert main([*common, "--name", "bad", "--authority", "Surrey"]) == 2
    registry = AlertKeys.load(keys)
    surrey = registry.authenticate((tmp_path / "a").read_text().strip())
    ops = registry.authenticate((tmp_path / "o").read_text().strip())
    assert surrey is not None and surrey.authority == "E10000030" and not surrey.operator
    assert ops is not None and ops.operator
    assert (tmp_path / "a").read_text().strip() not in keys.read_text()
    assert registry.names() == {"surrey", "ops"}
