"""Where a simulation goes: a file, the directory import, Kafka, the ingest API, the CLI."""

import io
import json
import tomllib
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.cli import main
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyEntry, ApiKeyRegistry
from services.ingest.directory_import import read_records
from services.ingest.settings import IngestSettings
from services.simulator.config import SimulationConfig
from services.simulator.generator import EventStream, all_sources
from services.simulator.run import build_world, simulate
from services.simulator.sinks import IngestSink, KafkaSink, Progress, SinkError, encode, read_api_keys
from tests.conftest import consume_all

SMALL = SimulationConfig(seed=5, locations=12, authorities=2, days=20)


def test_directory_files_import_as_they_are(tmp_path: Path) -> None:
    assert main(["simulate", "--seed", "4", "--locations", "30", "--days", "30", "--out", str(tmp_path / "e.ndjson"),
                 "--truth", str(tmp_path / "t.json"), "--directory", str(tmp_path / "dir")]) == 0  # fmt: skip
    population, _ = build_world(SimulationConfig(seed=4, locations=30, days=30))
    for name, count in [
        ("authorities", len(population.authorities)),
        ("locations", 30),
        ("placements", len(population.placements)),
    ]:
        kind, records, problems = read_records(tmp_path / "dir" / f"{name}.csv")
        assert (kind, problems, len(records)) == (name, [], count)
    sources = (tmp_path / "dir" / "sources.csv").read_text().splitlines()[1:]
    listed = {line.split(",", 1)[0] for line in sources}
    sent = {json.loads(line)["source"] for line in (tmp_path / "e.ndjson").read_text().splitlines()}
    assert sent <= listed
    truth = json.loads((tmp_path / "t.json").read_text())
    assert truth["seed"] == 4 and truth["locations"] == 30


def test_encoding_is_exactly_what_json_dumps_writes() -> None:
    config = SimulationConfig(seed=5, locations=80, days=120)
    events = list(EventStream(config, *build_world(config)))
    assert len({e["type"] for e in events}) >= 10
    assert all(encode(e) == json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in events)


def test_sources_lists_every_source_with_its_types(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--sources", "--locations", "20", "--authorities", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.endswith(" missed_visit") and "-ecm " in line for line in lines)
    assert len(lines) == len(all_sources(build_world(SimulationConfig(locations=20, authorities=2))[0]))


def test_bad_arguments_are_refused_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--days", "0"]) == 2
    assert "days must be at least 1" in capsys.readouterr().err
    assert main(["simulate", "--to", "ingest"]) == 2
    assert "--api-key-file" in capsys.readouterr().err


def test_api_key_map_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text('directory = "cs_d"\n[sources]\n"urn:caresignal:source:x-ecm" = "cs_1"\n')
    assert read_api_keys(path) == ({"urn:caresignal:source:x-ecm": "cs_1"}, "cs_d")
    path.write_text("[sources]\nx = 3\n")
    with pytest.raises(SinkError, match="must map each source"):
        read_api_keys(path)


@pytest.mark.integration
def test_kafka_sink_sends_events_keyed_by_location_and_the_directory(
    test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    sink = KafkaSink(test_kafka_settings.bootstrap_servers, topics)
    result = simulate(SMALL, sink, publish_directory=True)
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.events, expect=result.events)
    assert len(records) == result.events
    assert all(json.loads(r.value)["subject"].encode() == r.key for r in records)
    assert all(dict(r.headers)["content-type"].startswith(b"application/cloudevents+json") for r in records)
    locations = consume_all(test_kafka_settings.bootstrap_servers, topics.locations, expect=12)
    assert sorted(r.key.decode() for r in locations) == sorted(s.location_id for s in result.population.sites)


@pytest.mark.integration
def test_ingest_sink_sends_each_source_with_its_own_key(test_kafka_settings: KafkaSettings, topics: Topics) -> None:
    # Recent history: older events would need keys that may backfill.
    recent = SimulationConfig(seed=5, locations=12, authorities=2, days=20, start=date.today() - timedelta(days=30))
    population, _ = build_world(recent)
    sources = all_sources(population)
    keys = {source: f"cs_sim{i:04d}" for i, source in enumerate(sorted(sources))}
    entries = [
        ApiKeyEntry(name=f"sim{i}", sha256=_sha(keys[s]), source=s, event_types=sorted(sources[s]))
        for i, s in enumerate(sorted(sources))
    ]
    entries.append(
        ApiKeyEntry(name="simdir", sha256=_sha("cs_dir"), source="urn:caresignal:source:directory", directory=True)
    )
    settings = IngestSettings(future_tolerance_s=300)
    with TestClient(create_app(settings, test_kafka_settings, ApiKeyRegistry(entries))) as client:
        sink = IngestSink("http://testserver", keys, "cs_dir", batch=200, client=client)
        result = simulate(recent, sink, publish_directory=True)
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.events, expect=result.events)
    assert len(records) == result.events
    by_source = Counter(json.loads(r.value)["source"] for r in records)
    assert set(by_source) <= set(sources) and len(by_source) > 5
    placements = consume_all(
        test_kafka_settings.bootstrap_servers, topics.placements, expect=len(population.placements)
    )
    assert len(placements) == len(population.placements)


@pytest.mark.integration
def test_simulate_to_kafka_from_the_command_line(
    test_kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", test_kafka_settings.topic_prefix)
    args = ["simulate", "--seed", "5", "--locations", "12", "--authorities", "2", "--days", "20", "--to", "kafka"]
    assert main([*args, "--truth", str(tmp_path / "truth.json")]) == 0
    expected = sum(1 for _ in EventStream(SMALL, *build_world(SMALL)))
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.events, expect=expected)
    assert len(records) == expected
    population, _ = build_world(SMALL)
    authorities = consume_all(test_kafka_settings.bootstrap_servers, topics.authorities, expect=3)
    assert sorted(r.key.decode() for r in authorities) == sorted(a.ons_code for a in population.authorities)
    assert {a.ons_code[:3] for a in population.authorities} == {"E06", "E08", "E54"}  # the national mix, 2 of it


def test_progress_bar_draws_on_one_line_and_ends_it() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.events = 1234
    progress(0.5)
    progress(1.0)
    text = out.getvalue()
    assert text.startswith("\r[###############...............]  50%  1,234 events") and text.endswith("\n")
    assert text.count("\n") == 1


def test_ingest_sink_refuses_a_source_without_a_key() -> None:
    sink = IngestSink("http://127.0.0.1:9", {}, None)
    with pytest.raises(SinkError, match="no API key for source"):
        sink.send({"source": "urn:caresignal:source:x-ecm"})
    with pytest.raises(SinkError, match="no `directory` key"):
        sink.directory(build_world(SMALL)[0])


def _sha(key: str) -> str:
    from services.apikeys import hash_key

    return hash_key(key)


def test_toml_helper_used_by_docs_parses() -> None:
    # The example key map in docs/simulator.md must stay readable by read_api_keys.
    doc = (Path(__file__).resolve().parents[1] / "docs" / "simulator.md").read_text()
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    parsed = tomllib.loads(block)
    assert "sources" in parsed and isinstance(parsed.get("directory"), str)
