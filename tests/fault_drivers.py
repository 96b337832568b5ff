"""What drives the services in the fault tests: a steady load through ingest, writers
of the alert service's input topics, the scorer (one or several workers of one app),
ingest and alert service as processes configured for the faults, and what watches them
(their logs as they grow, their consumer group's state). `tests/faults.py` holds the
world, the oracle and the audits."""

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from kafka import KafkaAdminClient, KafkaProducer

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


class Putter(Protocol):
    def put(self, url: str, *, json: Any, headers: Mapping[str, str]) -> httpx.Response: ...


def put_directory(client: Putter, world: World) -> None:
    """The world's locations through ingest's directory API (before any event)."""
    for location_id, location in world.locations.items():
        put = client.put(f"/v1/locations/{location_id}", json=location_record(location), headers=INGEST_HEADERS)
        assert put.status_code == 200, put.text


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


def fault_scorer(
    workdir: Path, topic_prefix: str, kafka_port: int = 0, name: str = "scorer", app_id: str = ""
) -> FaultScorer:
    """A scorer with its data and logs in `workdir/name`; `app_id` (its consumer group) a
    new one unless given."""
    (workdir / name).mkdir(parents=True, exist_ok=True)
    policy_file = workdir / "fault-policy.yaml"
    policy_file.write_text(PIPELINE_POLICY)
    scorer = FaultScorer(
        topic_prefix=topic_prefix, workdir=workdir / name, policy_file=policy_file, kafka_port=kafka_port
    )
    if app_id:
        scorer.app_id = app_id
    return scorer


def fault_workers(workdir: Path, topic_prefix: str, count: int) -> list[FaultScorer]:
    """`count` workers of one scorer app (one consumer group), each with its own data
    directory, port and logs (`workdir/w0`, `w1`, ...)."""
    first = fault_scorer(workdir, topic_prefix, name="w0")
    rest = [fault_scorer(workdir, topic_prefix, name=f"w{n}", app_id=first.app_id) for n in range(1, count)]
    return [first, *rest]


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


# --- watching the processes ---------------------------------------------------------


@dataclass
class LogFollower:
    """Reads a process's log as it grows, from where it was when made."""

    path: Path
    _offset: int = 0
    _partial: bytes = b""
    _unread: list[str] = field(default_factory=list)  # read from the file, not yet returned

    def __post_init__(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def new_lines(self) -> list[str]:
        """The whole lines written since the last call."""
        lines, self._unread = self._unread, []
        if not self.path.exists():
            return lines
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        *whole, self._partial = (self._partial + data).split(b"\n")
        return lines + [line.decode(errors="replace") for line in whole]

    def saw(self, text: str) -> bool:
        """Whether a line written since the last `new_lines` contains `text` (those lines
        stay for the next `new_lines`)."""
        self._unread = self.new_lines()
        return any(text in line for line in self._unread)


def first_to_log(followers: Sequence[LogFollower], text: str, timeout_s: float, poll_s: float = 0.01) -> int:
    """Which of these logs is first to get a line containing `text` (its index)."""
    deadline = time.monotonic() + timeout_s
    while (first := next((n for n, f in enumerate(followers) if f.saw(text)), None)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no line with {text!r} in {[str(f.path) for f in followers]} in {timeout_s} s")
        time.sleep(poll_s)
    return first


def group_state(admin: KafkaAdminClient, group: str) -> str:
    """The consumer group's state as its coordinator tells it (Stable, PreparingRebalance,
    CompletingRebalance, Empty, Dead)."""
    described: dict[str, dict[str, Any]] = admin.describe_groups([group])
    return str(described[group]["group_state"])


def wait_for_group_state(admin: KafkaAdminClient, group: str, states: Iterable[str], timeout_s: float) -> str:
    """Asks the coordinator until the group is in one of these states; that state."""
    wanted = set(states)
    deadline = time.monotonic() + timeout_s
    while (state := group_state(admin, group)) not in wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} still {state} after {timeout_s} s, not {sorted(wanted)}")
        time.sleep(0.01)
    return state
