"""Runs real services (`caresignal scorer`, `caresignal alerts`) as processes of their own for a test."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """A `caresignal <command>` process with a /readyz, its log in `workdir`."""

    topic_prefix: str
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    command: str = "scorer"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CARESIGNAL_TOPIC_PREFIX": self.topic_prefix}

    @property
    def log_path(self) -> Path:
        """The log of the latest start."""
        return self.workdir / f"{self.command}-{self.starts}.log"

    def start(self, *extra: str, timeout_s: float = 120) -> None:
        self.starts += 1
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", self.command, *extra],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.command} was not ready within {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        logs = sorted(self.workdir.glob(f"{self.command}-*.log"))
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else ""

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def start_together(processes: Sequence[ServiceProcess], timeout_s: float = 120) -> None:
    """Start them at once, each in a thread of its own, and wait until every one is ready
    (scorers started so join one consumer group in a single rebalance or two)."""
    failures: list[BaseException] = []

    def start(process: ServiceProcess) -> None:
        try:
            process.start(timeout_s=timeout_s)
        except BaseException as exc:  # re-raised below: a thread's exception is otherwise lost
            failures.append(exc)

    starters = [threading.Thread(target=start, args=(p,), daemon=True) for p in processes]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(timeout=timeout_s + 10)
    assert not any(s.is_alive() for s in starters), f"a start did not return in {timeout_s + 10} s"
    if failures:
        raise failures[0]


@dataclass
class ScorerProcess(ServiceProcess):
    app_id: str = field(default_factory=lambda: f"scorer-test-{uuid.uuid4().hex[:8]}")

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "CARESIGNAL_SCORING_APP_ID": self.app_id,
            "CARESIGNAL_SCORING_WEB_PORT": str(self.port),
            "CARESIGNAL_SCORING_DATA_DIR": str(self.workdir / "data"),
            # A killed worker's partitions go to its successor after this long (the
            # broker's minimum), not the production minute.
            "CARESIGNAL_SCORING_SESSION_TIMEOUT_S": "6",
        }


def committed_reader(bootstrap: str, topic: str) -> KafkaConsumer:
    """A consumer of the risk-change topic that sees only committed transactions."""
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )


def read_until(consumer: KafkaConsumer, done: Callable[[list[bytes]], bool], timeout_s: float = 90) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            values.extend(r.value for r in batch)
        if done(values):
            # Anything that arrives shortly after is part of the answer too (duplicates).
            for batch in consumer.poll(timeout_ms=2000).values():
                values.extend(r.value for r in batch)
            return values
    return values


@dataclass
class AlertsProcess(ServiceProcess):
    """`caresignal alerts` with its own database, contact file, keys and consumer group."""

    command: str = "alerts"
    database_url: str = ""
    smtp_port: int = 0
    group: str = field(default_factory=lambda: f"alerts-test-{uuid.uuid4().hex[:8]}")
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.workdir / 'alerts.db'}"

    @property
    def contacts_file(self) -> Path:
        return self.workdir / "contacts.yaml"

    @property
    def keys_file(self) -> Path:
        return self.workdir / "alert-keys.toml"

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "CARESIGNAL_ALERTS_PORT": str(self.port),
            "CARESIGNAL_ALERTS_DATABASE_URL": self.database_url,
            "CARESIGNAL_ALERTS_CONTACTS_FILE": str(self.contacts_file),
            "CARESIGNAL_ALERTS_CONTACTS_POLL_S": "0.2",
            "CARESIGNAL_ALERTS_API_KEYS_FILE": str(self.keys_file),
            "CARESIGNAL_ALERTS_CONSUMER_GROUP": self.group,
            "CARESIGNAL_ALERTS_SMTP_PORT": str(self.smtp_port),
            "CARESIGNAL_ALERTS_POLL_INTERVAL_S": "0.2",
            "CARESIGNAL_ALERTS_BACKOFF_INITIAL_S": "0.5",
            "CARESIGNAL_ALERTS_BACKOFF_MAX_S": "2",
            "CARESIGNAL_ALERTS_CLAIM_LEASE_S": "5",
            "CARESIGNAL_ALERTS_HTTP_TIMEOUT_S": "2",
            **self.settings,
        }


def group_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition, how many records of the topic the consumer group has not committed."""
    # Never subscribes: it only reads the group's committed offsets, it does not join it.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions)
        return {tp.partition: end - (consumer.committed(tp) or 0) for tp, end in ends.items()}
    finally:
        consumer.close()


def wait_caught_up(bootstrap: str, group: str, topic: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    lag = group_lag(bootstrap, group, topic)
    while any(lag.values()):
        assert time.monotonic() < deadline, f"group {group} behind on {topic} by partition: {lag}"
        time.sleep(0.5)
        lag = group_lag(bootstrap, group, topic)
