"""What drives the services in the fault tests: a steady load through ingest, writers
of the alert service's input topics, and the scorer, ingest and alert service as
processes configured for the faults (`tests/faults.py` holds the world, the oracle and
the audits)."""

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from kafka import KafkaProducer

from schemas.events import SHORT_NAMES
from schemas.risk import LevelChange
from schemas.topics import Topics
from services.alerts.routing import alert_id_for
from services.ingest.auth import ApiKeyEntry, append_key, hash_key
from tests.alert_peers import OPERATOR_KEY
from tests.conftest import KEYS
from tests.faults import INGEST_HEADERS, World, location_record
from tests.ingest_process import IngestProcess
from tests.test_evaluation_pipeline import PIPELINE_POLICY, QuietScorer

# --- load --------------------------------------------------------------------------


class Poster(Protocol):
    def post(self, url: str, *, json: Any, headers: Mapping[str, str]) -> httpx.Response: ...


@dataclass
class Paced:
    """Sends items at a steady rate from a thread of its own, `batch` at a time, until they
    run out or `stop()`; `sent` holds what `send` completed, in order."""

    send: Callable[[list[Any]], None]
    items: Sequence[Any]
    rate: float  # items per second
    batch: int = 1
    sent: list[Any] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> "Paced":
        self._thread = threading.Thread(target=self._run, name="paced-load", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        try:
            for at in range(0, len(self.items), self.batch):
                if self.stop_requested.is_set():
                    return
                chunk = list(self.items[at : at + self.batch])
                self.send(chunk)
                self.sent.extend(chunk)
                ahead = started + (at + self.batch) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as exc:  # re-raised by stop(): a thread's exception is otherwise lost
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 120) -> None:
        self.stop_requested.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            assert not self._thread.is_alive(), f"the load did not stop in {timeout_s} s"
        if self.error is not None:
            raise self.error


@dataclass
class IngestClient:
    """A well-behaved ingest client: a request is resent until it is accepted (202)
    before the next is sent, so that every location's events reach their partition in
    the order sent; resends are harmless, the scorer knows an event by its id."""

    client: Poster
    retry_pause_s: float = 0.2
    statuses: Counter[int] = field(default_factory=Counter)

    def send(self, chunk: list[dict[str, Any]]) -> None:
        while True:
            if len(chunk) == 1:
                response = self.client.post("/v1/events", json=chunk[0], headers=INGEST_HEADERS)
            else:
                response = self.client.post("/v1/events/batch", json=chunk, headers=INGEST_HEADERS)
            self.statuses[response.status_code] += 1
            if response.status_code == 202:
                return
            if response.status_code not in (207, 503):
                raise AssertionError(f"ingest answered {response.status_code}: {response.text[:500]}")
            # Partly or not stored: the whole request again.
            time.sleep(self.retry_pause_s)


def ingest_load(
    client: Poster, events: Sequence[dict[str, Any]], rate: float, batch: int
) -> tuple[Paced, IngestClient]:
    sender = IngestClient(client)
    return Paced(sender.send, events, rate, batch).start(), sender


# --- topics written directly (the alert service's input) --------------------------


def publish_directory(producer: KafkaProducer, topics: Topics, world: World) -> None:
    for location in world.locations.values():
        value = json.dumps(location_record(location)).encode()
        producer.send(topics.locations, key=location.location_id.encode(), value=value)
    for authority, location_id in world.placements:
        record = {"authority": authority, "location_id": location_id, "people_placed": 2, "status": "active"}
        producer.send(topics.placements, key=f"{location_id}/{authority}".encode(), value=json.dumps(record).encode())
    producer.flush()


def change_sender(producer: KafkaProducer, topic: str) -> Callable[[list[LevelChange]], None]:
    """Publishes level changes as the scorer does: keyed by subject, acknowledged."""

    def send(changes: list[LevelChange]) -> None:
        for change in changes:
            producer.send(topic, key=change.key.encode(), value=change.model_dump_json().encode())
        producer.flush()

    return send


def alert_state(url: str, change_id: str, authority: str) -> list[dict[str, Any]]:
    """The webhook deliveries to one authority of the alert a change became."""
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    response = httpx.get(f"{url}/v1/alerts/{alert_id_for(change_id)}", headers=headers, timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [d for d in response.json()["deliveries"] if d["authority"] == authority and d["channel"] == "webhook"]


# --- the scorer under test ----------------------------------------------------------


@dataclass
class FaultScorer(QuietScorer):
    """The pipeline test's quiet scorer (no time signals, no peer rules), on any broker."""

    kafka_port: int = 0

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.kafka_port:
            env["CARESIGNAL_KAFKA_PORT"] = str(self.kafka_port)
        return env


def fault_scorer(workdir: Path, topic_prefix: str, kafka_port: int = 0) -> FaultScorer:
    (workdir / "scorer").mkdir(parents=True, exist_ok=True)
    policy_file = workdir / "fault-policy.yaml"
    policy_file.write_text(PIPELINE_POLICY)
    return FaultScorer(
        topic_prefix=topic_prefix, workdir=workdir / "scorer", policy_file=policy_file, kafka_port=kafka_port
    )


def scorer_metric(url: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples whose labels include these."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for_directory(url: str, location_ids: Iterable[str], timeout_s: float = 60) -> None:
    """Until the scorer holds every directory record (a separate stream from the events)."""
    pending = list(location_ids)
    deadline = time.monotonic() + timeout_s
    while pending:
        if httpx.get(f"{url}/v1/directory/locations/{pending[-1]}", timeout=10).status_code == 200:
            pending.pop()
            continue
        if time.monotonic() > deadline:
            raise AssertionError(f"the scorer did not read {len(pending)} directory records in {timeout_s} s")
        time.sleep(0.2)


@dataclass
class FaultIngest(IngestProcess):
    """`caresignal ingest` with the one key the fault tests send with, on any broker."""

    kafka_port: int = 0
    settings: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {**super().env(), **self.settings}
        if self.kafka_port:
            env["CARESIGNAL_KAFKA_PORT"] = str(self.kafka_port)
        return env

    def start(self, *extra: str, timeout_s: float = 120) -> None:
        if not self.keys_file.exists():
            key, source, _, _ = KEYS["all"]
            entry = ApiKeyEntry(
                name="faults", sha256=hash_key(key), source=source, event_types=sorted(SHORT_NAMES), directory=True
            )
            append_key(self.keys_file, entry)
        super().start(*extra, timeout_s=timeout_s)
