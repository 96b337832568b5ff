"""A single-node Kafka 4 broker (KRaft, combined broker and controller) on loopback.

The jars come from Maven Central through `deploy/kafka/pom.xml`, so nothing but Maven
and a JDK is needed, and the same resolution runs on a developer's machine and in CI.
"""

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from services.broker.security import PLAINTEXT, KafkaSecurity
from services.broker.settings import PROJECT_ROOT

POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"


class BrokerError(RuntimeError):
    """The local broker could not be prepared, started or stopped."""


# User names and passwords go into a JAAS line, a properties file and the storage tool's
# `--add-scram` argument: characters with a meaning in any of them are refused, not escaped.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class SaslSslListener:
    """A SASL_SSL listener beside the PLAINTEXT one, as a secured cluster would offer.

    `keystore` is a PEM file holding the broker's private key (PKCS#8, unencrypted) and
    its certificate chain. SCRAM users are stored at format time (`--add-scram`), so they
    apply to a fresh data directory only; PLAIN users live in the listener's JAAS line.
    With `client_ca`, clients must present a certificate that CA signed.
    """

    port: int
    keystore: Path
    scram_users: Mapping[str, str] = field(default_factory=dict)
    plain_users: Mapping[str, str] = field(default_factory=dict)
    client_ca: Path | None = None

    def __post_init__(self) -> None:
        for users in (self.scram_users, self.plain_users):
            for name, password in users.items():
                if not (_CREDENTIAL.fullmatch(name) and _CREDENTIAL.fullmatch(password)):
                    raise BrokerError(f"user {name!r}: names and passwords may use only A-Z a-z 0-9 . _ -")

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> list[str]:
        prefix = "listener.name.sasl_ssl."
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in self.plain_users.items())
        lines = [
            f"{prefix}sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
            f"{prefix}scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"{prefix}plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required"
            f" {plain_users};",
            f"{prefix}ssl.keystore.type=PEM",
            f"{prefix}ssl.keystore.location={self.keystore}",
        ]
        if self.client_ca is not None:
            lines += [
                f"{prefix}ssl.client.auth=required",
                f"{prefix}ssl.truststore.type=PEM",
                f"{prefix}ssl.truststore.location={self.client_ca}",
            ]
        return lines

    def format_arguments(self) -> list[str]:
        arguments: list[str] = []
        for name, password in self.scram_users.items():
            arguments += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return arguments


@dataclass(frozen=True)
class BrokerStatus:
    pid: int | None
    answering: bool

    @property
    def running(self) -> bool:
        return self.pid is not None


def broker_answers(bootstrap_servers: str, timeout_s: float = 3.0, security: KafkaSecurity = PLAINTEXT) -> bool:
    """True when a broker at that address answers a metadata request."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            client_id="caresignal-probe",
            **security.kafka_python(),
        )
    except KafkaError:
        return False
    try:
        admin.describe_cluster()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


class LocalBroker:
    def __init__(
        self,
        home: Path,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "768m",
        libs: Path | None = None,
        sasl_ssl: SaslSslListener | None = None,
    ) -> None:
        self.home = home
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        # The PLAINTEXT listener stays: the broker's own readiness probe and the
        # single node's inter-broker traffic use it, on loopback only.
        self.sasl_ssl = sasl_ssl
        # Brokers on other ports (tests) share the one resolved classpath.
        self.libs = libs or (PROJECT_ROOT / ".cache" / "kafka" / "libs")
        self.data_dir = home / "data"
        self.pid_file = home / "broker.pid"
        self.log_file = home / "server.log"
        self.stdout_file = home / "stdout.log"
        self.properties_file = home / "server.properties"
        self.log4j_file = home / "log4j2.properties"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    # --- jars ------------------------------------------------------------------------

    def ensure_jars(self) -> None:
        """Resolve the broker's classpath with Maven unless the pom is unchanged."""
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()
        stamp = self.libs / ".pom.sha256"
        if stamp.exists() and stamp.read_text().strip() == digest:
            return
        if shutil.which("mvn") is None:
            raise BrokerError("Maven (mvn) is not installed; it resolves the broker's jars")
        staging = self.libs.with_name(self.libs.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"Maven could not resolve the Kafka jars:\n{result.stdout}{result.stderr}")
        (staging / ".pom.sha256").write_text(digest)
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)

    # --- configuration -----------------------------------------------------------------

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{self.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        secured: list[str] = []
        if self.sasl_ssl is not None:
            listeners.append(f"SASL_SSL://127.0.0.1:{self.sasl_ssl.port}")
            advertised.append(f"SASL_SSL://127.0.0.1:{self.sasl_ssl.port}")
            protocols.append("SASL_SSL:SASL_SSL")
            secured = self.sasl_ssl.properties()
        # It may hold PLAIN users' passwords.
        self.properties_file.touch(mode=0o600)
        self.properties_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners={','.join(listeners)}",
                    f"advertised.listeners={','.join(advertised)}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map={','.join(protocols)}",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    # One node: no reason to wait for more members before a rebalance.
                    "group.initial.rebalance.delay.ms=0",
                    # Topics are provisioned explicitly; a typo must not create a topic.
                    "auto.create.topics.enable=false",
                    "log.cleaner.backoff.ms=1000",
                    *secured,
                    "",
                ]
            )
        )
        self.log4j_file.write_text(
            "\n".join(
                [
                    "rootLogger.level=INFO",
                    "rootLogger.appenderRef.file.ref=file",
                    "appender.file.type=File",
                    "appender.file.name=file",
                    f"appender.file.fileName={self.log_file}",
                    "appender.file.layout.type=PatternLayout",
                    "appender.file.layout.pattern=[%d] %p %m (%c)%n",
                    "logger.kafka.name=kafka",
                    "logger.kafka.level=INFO",
                    "logger.state.name=state.change.logger",
                    "logger.state.level=WARN",
                    "",
                ]
            )
        )

    def _classpath(self) -> str:
        return f"{self.libs}/*"

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        # Like Kafka's own Uuid.randomUuid(): an id starting with "-" would be read as an
        # option by the storage tool's argument parser (1 start in 64 failed that way).
        cid = "-"
        while cid.startswith("-"):
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                "java",
                f"-Dlog4j2.configurationFile={self.log4j_file}",
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cid,
                "-c",
                str(self.properties_file),
                *(self.sasl_ssl.format_arguments() if self.sasl_ssl is not None else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    # --- lifecycle ---------------------------------------------------------------------

    def _our_pid(self) -> int | None:
        """The pid in the pid file if that process is alive and is our broker."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return None
        if b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline:
            return pid
        return None

    def status(self) -> BrokerStatus:
        pid = self._our_pid()
        return BrokerStatus(pid=pid, answering=pid is not None and broker_answers(self.bootstrap_servers))

    def start(self, timeout_s: float = 120.0) -> BrokerStatus:
        pid = self._our_pid()
        if pid is not None:
            self._wait_until_answering(pid, timeout_s)
            return BrokerStatus(pid=pid, answering=True)
        ports = [self.port, self.controller_port] + ([self.sasl_ssl.port] if self.sasl_ssl is not None else [])
        for port in ports:
            if _port_in_use(port):
                raise BrokerError(
                    f"127.0.0.1:{port} is already in use by a process this directory did not start "
                    f"(another broker?). Set KAFKA_BOOTSTRAP_SERVERS to use that cluster, or "
                    f"CARESIGNAL_KAFKA_PORT / CARESIGNAL_KAFKA_CONTROLLER_PORT to run another one."
                )
        self.ensure_jars()
        self._write_config()
        self._format_storage()
        with self.stdout_file.open("ab") as out:
            process = subprocess.Popen(
                [
                    "java",
                    f"-Xmx{self.heap}",
                    "-Xms256m",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={self.log4j_file}",
                    "-cp",
                    self._classpath(),
                    "kafka.Kafka",
                    str(self.properties_file),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C in the shell that ran `start` must not kill it.
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        self._wait_until_answering(process.pid, timeout_s)
        return BrokerStatus(pid=process.pid, answering=True)

    def _wait_until_answering(self, pid: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _reap(pid)
            if not _alive(pid):
                raise BrokerError(f"the broker exited during start-up; last log lines:\n{self._log_tail()}")
            if broker_answers(self.bootstrap_servers, timeout_s=2.0):
                return
            time.sleep(0.5)
        raise BrokerError(f"the broker did not answer within {timeout_s:.0f}s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        chunks = []
        for path in (self.stdout_file, self.log_file):
            if path.exists():
                chunks.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(chunks)

    def stop(self, timeout_s: float = 30.0, hard: bool = False) -> bool:
        """Stop the broker this directory started; False when none was running."""
        pid = self._our_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._our_pid() == pid:
            _reap(pid)
            time.sleep(0.2)
        if self._our_pid() == pid:
            os.kill(pid, signal.SIGKILL)
            while self._our_pid() == pid:
                _reap(pid)
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    # Not the cmdline check: while the java launcher re-executes itself its cmdline can
    # read empty for a moment, and that must not count as "exited".
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _reap(pid: int) -> None:
    # When the broker is our own child (tests), collect it so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
