"""The scoring worker against the real broker, as a real process."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from schemas.examples import example_event
from schemas.risk import LevelChange
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.cli import main
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from services.scoring.policy import load_policy
from tests.conftest import KEYS, consume_all
from tests.service_process import ScorerProcess, committed_reader, read_until

pytestmark = pytest.mark.integration

SOURCE = KEYS["all"][1]
HEADERS = {"Authorization": f"Bearer {KEYS['all'][0]}"}
# The worker's tests run the previous default policy (default-2026.11.4), whose count
# pattern makes a Minor of three missed visits at a new agency: what the worker does with
# a change does not depend on which rule made it, and the current default's own-history
# rules need months of history first.
WORKER_POLICY = Path(__file__).parent / "data" / "policy" / "default-2026.11.4.yaml"
# Recent enough that the missed-visit pattern (28 days) still holds when time signals tick to today.
# Change ids name the policy version that decided them.
VERSION = load_policy(WORKER_POLICY).version
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)


@dataclass
class PolicyScorer(ScorerProcess):
    """A scorer with the worker tests' policy file."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "CARESIGNAL_SCORING_POLICY_FILE": str(WORKER_POLICY)}


@pytest.fixture
def scorer(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ScorerProcess]:
    process = PolicyScorer(topic_prefix=test_kafka_settings.topic_prefix, workdir=tmp_path)
    try:
        yield process
    finally:
        process.stop()


def location(location_id: str, provider: str = "1-000111222") -> dict[str, object]:
    return {
        "location_id": location_id,
        "provider_id": provider,
        "service_type": "home_care",
        "capacity": 4,  # small: three missed visits are already "repeated" for its size
        "host_authority": "E10000030",
    }


def missed(event_id: str, location_id: str, at: datetime) -> dict[str, object]:
    return example_event(
        "missed_visit",
        event_id=event_id,
        source=SOURCE,
        location_id=location_id,
        time=at,
        data={"outcome": "missed", "time_critical": False},
    )


def serious(event_id: str, location_id: str, at: datetime) -> dict[str, object]:
    return example_event(
        "safeguarding_concern",
        event_id=event_id,
        source=SOURCE,
        location_id=location_id,
        time=at,
        data={"abuse_type": "neglect", "serious": True, "linked_death": False},
    )


def wait_for_status(url: str, status: int, timeout_s: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(url, timeout=10)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def test_events_posted_to_ingest_become_explained_level_changes(
    scorer: ScorerProcess,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
    api_keys: ApiKeyRegistry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scorer.start()
    with TestClient(create_app(IngestSettings(), test_kafka_settings, api_keys)) as ingest:
        for loc in ("1-100000001", "1-100000002"):
            assert ingest.put(f"/v1/locations/{loc}", json=location(loc), headers=HEADERS).status_code == 200
            # Directory records and events are separate streams: wait until the scorer has the record.
            wait_for_status(f"{scorer.url}/v1/directory/locations/{loc}", 200)
        # One missed visit is poor care, not a concern; the third within 28 days is a pattern.
        batch = [missed(f"mv-{i}", "1-100000001", START + timedelta(days=i)) for i in range(3)]
        batch.append(serious("sg-1", "1-100000001", START + timedelta(days=4)))
        batch.append(serious("sg-2", "1-100000002", START + timedelta(days=5)))
        assert ingest.post("/v1/events/batch", json=batch, headers=HEADERS).status_code == 202

    reader = committed_reader(test_kafka_settings.bootstrap_servers, topics.risk_changes)
    values = read_until(reader, lambda v: len(v) >= 4)
    reader.close()
    changes = {c.change_id: c for c in (LevelChange.model_validate_json(v) for v in values)}
    first = changes[f"1-100000001:{VERSION}:1"]
    assert (first.old_level, first.new_level, first.direction) == ("none", "minor", "escalation")
    assert [r.rule_id for r in first.reasons] == ["repeated_missed_visits"]
    assert [e.event_id for e in first.reasons[0].evidence] == ["mv-0", "mv-1", "mv-2"]
    assert first.policy_version == VERSION and first.actions[0].lead == "Contracts"
    second = changes[f"1-100000001:{VERSION}:2"]
    assert second.new_level == "major" and second.reasons[0].rule_id == "serious_abuse_or_neglect"
    assert second.decided_at == START + timedelta(days=4)
    assert changes[f"1-100000002:{VERSION}:1"].new_level == "major"
    # Two locations of one provider at Moderate or above: an organisation-level change.
    org = changes[f"org:1-000111222:{VERSION}:1"]
    assert org.scope == "organisation" and org.locations == ["1-100000001", "1-100000002"]
    assert len(changes) == len(values) == 4

    risk = httpx.get(f"{scorer.url}/v1/locations/1-100000001/risk", timeout=10).json()
    assert risk["level"] == "major" and risk["since"] == (START + timedelta(days=4)).isoformat()
    assert {r["rule_id"] for r in risk["reasons"]} == {"serious_abuse_or_neglect", "repeated_missed_visits"}
    assert risk["recent_evidence"][0]["event_id"] == "sg-1"
    board = httpx.get(f"{scorer.url}/v1/locations", params={"level": "major"}, timeout=10).json()
    assert [row["location_id"] for row in board["locations"]] == ["1-100000001", "1-100000002"]
    assert httpx.get(f"{scorer.url}/v1/locations/1-199999999/risk", timeout=10).status_code == 404

    assert main(["policy", "explain", "1-100000001", "--url", scorer.url]) == 0
    out = capsys.readouterr().out
    assert "MAJOR" in out and "serious_abuse_or_neglect" in out and "mv-2" in out
    assert "since None" not in out and "(3 events)" in out and "(1 event)" in out

    metrics = httpx.get(f"{scorer.url}/metrics", timeout=10).text
    assert 'caresignal_scoring_events_total{event_type="missed_visit",status="applied"} 3.0' in metrics
    assert (
        'caresignal_scoring_level_changes_total{direction="escalation",new_level="major",scope="location"} 2.0'
        in metrics
    )
    assert 'caresignal_scoring_locations{level="major"} 2.0' in metrics
    # The two locations' states reach the table at commits (every ~3 s), once per commit
    # that finds them changed, however many events changed them in between.
    written = 'caresignal_scoring_written_back_total{table="location-state"} '
    assert written in metrics, "the series exists from the start, before the first commit"
    deadline = time.monotonic() + 30
    while f"{written}0.0" in metrics and time.monotonic() < deadline:
        time.sleep(0.5)
        metrics = httpx.get(f"{scorer.url}/metrics", timeout=10).text
    count = float(metrics.split(written, 1)[1].split()[0])
    assert 2 <= count <= 6 and "caresignal_scoring_write_back_seconds_count" in metrics, metrics


def test_bad_messages_go_to_the_dead_letter_topic_and_the_worker_carries_on(
    scorer: ScorerProcess,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
) -> None:
    scorer.start()
    producer = KafkaProducer(bootstrap_servers=test_kafka_settings.bootstrap_servers, acks="all")
    good = missed("good-1", "1-100000009", START)
    producer.send(topics.events, key=b"1-100000009", value=b"{not json")
    producer.send(topics.events, key=b"1-100000009", value=json.dumps({**good, "subject": "Jane Doe"}).encode())
    producer.send(topics.events, key=b"1-100000001", value=json.dumps(good).encode())  # wrong key
    producer.send(topics.events, key=b"1-100000009", value=json.dumps(good).encode())
    producer.flush()
    producer.close()

    dead = consume_all(test_kafka_settings.bootstrap_servers, topics.dead_letter, expect=3, timeout_s=60)
    reasons = [dict(r.headers)["caresignal.error.reason"] for r in dead]
    assert reasons == [b"invalid_event", b"invalid_event", b"key_mismatch"]
    detail = dict(dead[1].headers)["caresignal.error.detail"].decode()
    assert "subject" in detail and "Jane Doe" not in detail
    assert dict(dead[0].headers)["caresignal.source.topic"] == topics.events.encode()
    assert dead[0].value == b"{not json"

    response = wait_for_status(f"{scorer.url}/v1/locations/1-100000009/risk", 200)
    assert response.json()["recent_evidence"][0]["event_id"] == "good-1"
    assert scorer.process is not None and scorer.process.poll() is None


def produce_history(bootstrap: str, topics: Topics, locations: int) -> set[str]:
    """Each location: three missed visits (Minor) then a serious concern (Major)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    expected = set()
    for n in range(locations):
        loc = f"1-3{n:08d}"
        events = [missed(f"{loc}-mv-{i}", loc, START + timedelta(hours=i)) for i in range(3)]
        events.append(serious(f"{loc}-sg", loc, START + timedelta(days=1)))
        for event in events:
            producer.send(topics.events, key=loc.encode(), value=json.dumps(event).encode())
        expected |= {f"{loc}:{VERSION}:1", f"{loc}:{VERSION}:2"}
    producer.flush()
    producer.close()
    return expected


def test_kill_9_mid_stream_loses_and_repeats_no_level_change(
    scorer: ScorerProcess,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
) -> None:
    expected = produce_history(test_kafka_settings.bootstrap_servers, topics, locations=600)
    reader = committed_reader(test_kafka_settings.bootstrap_servers, topics.risk_changes)
    scorer.start()
    before_kill = read_until(reader, lambda v: len(v) >= 200, timeout_s=120)
    assert len(before_kill) < len(expected), "the scorer finished before it could be killed mid-stream"
    scorer.kill()
    scorer.start()
    after = read_until(reader, lambda v: len(before_kill) + len(v) >= len(expected), timeout_s=180)
    reader.close()
    ids = [LevelChange.model_validate_json(v).change_id for v in before_kill + after]
    assert sorted(ids) == sorted(expected), "a level change was lost or published twice"
    risk = httpx.get(f"{scorer.url}/v1/locations/1-300000000/risk", timeout=10).json()
    assert risk["level"] == "major"


def test_replay_rebuilds_the_same_level_changes(
    scorer: ScorerProcess,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
) -> None:
    expected = produce_history(test_kafka_settings.bootstrap_servers, topics, locations=20)
    reader = committed_reader(test_kafka_settings.bootstrap_servers, topics.risk_changes)
    scorer.start()
    first = read_until(reader, lambda v: len(v) >= len(expected))
    scorer.stop()
    scorer.start("--replay")
    again = read_until(reader, lambda v: len(v) >= len(expected))
    reader.close()
    assert len(first) == len(again) == len(expected)
    live = [LevelChange.model_validate_json(v) for v in first]
    replayed = [LevelChange.model_validate_json(v) for v in again]
    # The same decisions (ids, reasons, times, policy version), now marked as decisions
    # about the past, so that alerts tells recipients the current level once instead of
    # sending the history again.
    assert not any(c.backfill for c in live) and all(c.backfill for c in replayed)
    unmarked = sorted(c.model_copy(update={"backfill": False}).model_dump_json() for c in replayed)
    assert unmarked == sorted(c.model_dump_json() for c in live)


def test_a_change_already_on_the_topic_is_not_published_again(
    scorer: ScorerProcess,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
) -> None:
    # As after a crash between the change's acknowledgement and the state's write: the
    # change is on the topic, the state that records it is not.
    producer = KafkaProducer(bootstrap_servers=test_kafka_settings.bootstrap_servers, acks="all")
    earlier = LevelChange(
        change_id=f"1-400000001:{VERSION}:1",
        sequence=1,
        location_id="1-400000001",
        old_level="none",
        new_level="major",
        direction="escalation",
        score=0.0,
        reasons=[],
        actions=[],
        meaning="",
        policy_version=VERSION,
        decided_at=START,
    )
    producer.send(topics.risk_changes, key=b"1-400000001", value=earlier.model_dump_json().encode())
    for event in (serious("sg-a", "1-400000001", START), serious("sg-b", "1-400000002", START)):
        producer.send(topics.events, key=event["subject"].encode(), value=json.dumps(event).encode())  # type: ignore[attr-defined]
    producer.flush()
    producer.close()
    scorer.start()
    reader = committed_reader(test_kafka_settings.bootstrap_servers, topics.risk_changes)
    values = read_until(reader, lambda v: len(v) >= 2)
    reader.close()
    ids = [LevelChange.model_validate_json(v).change_id for v in values]
    assert sorted(ids) == [f"1-400000001:{VERSION}:1", f"1-400000002:{VERSION}:1"]
    assert "was published before a restart" in scorer.log_tail(400)


def changelog_values(bootstrap: str, topic: str, key: bytes, want: int, timeout_s: float = 60) -> list[bytes]:
    """The values of a table's changelog records for one key, read until `want` arrived."""
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < want and time.monotonic() < deadline:
        records = consume_all(bootstrap, topic, expect=1_000_000, timeout_s=2)
        values = [r.value for r in records if r.key == key]
    return values


def test_a_redelivered_event_writes_the_state_that_holds_it_to_the_changelog_again(
    scorer: ScorerProcess,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
) -> None:
    # After a crash or a rebalance the events after the last commit come again. The
    # worker's local store may hold the state they made while the changelog does not (the
    # crash came before that record left): the state is written again before the offset
    # is committed, or a worker restoring the location from the changelog never sees them.
    bootstrap = test_kafka_settings.bootstrap_servers
    changelog = f"{scorer.app_id}-location-state-changelog"
    event = json.dumps(missed("mv-again", "1-500000001", START)).encode()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(topics.events, key=b"1-500000001", value=event)
    producer.flush()
    scorer.start()
    first = changelog_values(bootstrap, changelog, b'"1-500000001"', want=1)
    assert len(first) == 1, f"the state was written {len(first)} times for one event"

    producer.send(topics.events, key=b"1-500000001", value=event)
    producer.flush()
    producer.close()
    again = changelog_values(bootstrap, changelog, b'"1-500000001"', want=2)
    assert again == [first[0], first[0]], "the redelivered event's state was not written to the changelog again"
