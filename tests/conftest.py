"""Fixtures with real parts: a real Kafka broker, a topic set and consumer group per test.

If the broker cannot start, the session fails: integration tests never skip.
"""

import contextlib
import os
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError

from schemas.topics import Topics
from services.broker.local import LocalBroker
from services.broker.settings import KafkaSettings
from services.broker.topics import create_topics
from services.ingest.auth import ApiKeyEntry, ApiKeyRegistry, hash_key
from tests.alert_peers import AUTHORITIES, Peers
from tests.receivers import SmtpSink, WebhookReceiver, new_secret

# In CI (a clean clone, no example database) property tests draw the same examples every
# run, so that a red build is a regression and not a new random draw; on a developer's
# machine they explore, and a failure found there is kept in .hypothesis/ and replayed.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

KEYS = {
    # name: (key, source, event types, may write the directory)
    "ecm": ("cs_test_ecm_key", "urn:caresignal:source:test-ecm", ["missed_visit"], False),
    "all": ("cs_test_all_key", "urn:caresignal:source:test-all", None, True),
}


@pytest.fixture(scope="session")
def kafka_settings() -> Iterator[KafkaSettings]:
    settings = KafkaSettings()
    if settings.external:
        yield settings
        return
    broker = LocalBroker(settings.kafka_home, settings.kafka_port, settings.kafka_controller_port, settings.kafka_heap)
    already_running = broker.status().running
    broker.start()  # raises, failing the session, if the broker cannot start
    yield settings
    if not already_running:
        # Leave a broker that `make run` started; stop the one the tests started.
        broker.stop()


PG_SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "postgres-local.sh"


def postgres_local(command: str) -> subprocess.CompletedProcess[str]:
    """deploy/postgres-local.sh <command>; a hang (e.g. a stuck lock) fails rather than waits forever."""
    try:
        return subprocess.run(["bash", str(PG_SCRIPT), command], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"deploy/postgres-local.sh {command} did not finish in 180 s:\n{e.stdout!r}\n{e.stderr!r}", pytrace=False
        )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server: CARESIGNAL_TEST_DATABASE_URL, or one started here."""
    given = os.environ.get("CARESIGNAL_TEST_DATABASE_URL")
    if given:
        yield given
        return
    already_running = postgres_local("status").returncode == 0
    started = postgres_local("start")
    if started.returncode != 0:
        pytest.fail(
            f"PostgreSQL did not start (deploy/postgres-local.sh start exited {started.returncode}):\n"
            f"{started.stdout}\n{started.stderr}",
            pytrace=False,
        )
    yield started.stdout.strip().splitlines()[-1]
    if not already_running:
        # Leave a server that `make postgres-start` started; stop the one the tests started.
        stopped = postgres_local("stop")
        if stopped.returncode != 0:
            warnings.warn(f"PostgreSQL did not stop: {stopped.stdout}{stopped.stderr}", stacklevel=1)


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, uniquely named database on the server of `server_url` (a SQLAlchemy URL), dropped on exit."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a test's leftover pooled connections must not keep the database alive.
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    """A database of this test's own on the real server, dropped afterwards."""
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture
def topics(kafka_settings: KafkaSettings) -> Iterator[Topics]:
    """A fresh set of topics for this test only."""
    names = Topics.with_prefix(f"t{uuid.uuid4().hex[:10]}")
    create_topics(kafka_settings.bootstrap_servers, names)
    yield names
    # A long-lived local broker with thousands of leftover topics starts slowly.
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    try:
        admin.delete_topics(list(names.by_role().values()))
    except KafkaError as exc:
        warnings.warn(f"could not delete the test's topics: {exc}", stacklevel=1)
    finally:
        admin.close()


@pytest.fixture
def test_kafka_settings(kafka_settings: KafkaSettings, topics: Topics) -> KafkaSettings:
    prefix = topics.events.split(".", 1)[0]
    return kafka_settings.model_copy(update={"topic_prefix": prefix})


@pytest.fixture
def api_keys() -> ApiKeyRegistry:
    from schemas.events import SHORT_NAMES

    return ApiKeyRegistry(
        [
            ApiKeyEntry(
                name=name,
                sha256=hash_key(key),
                source=source,
                event_types=sorted(SHORT_NAMES) if types is None else types,
                directory=directory,
            )
            for name, (key, source, types, directory) in KEYS.items()
        ]
    )


def consume_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 20.0) -> list:  # type: ignore[type-arg]
    """Read a topic from the beginning with a consumer group of its own."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expect:
                # Keep reading briefly: anything beyond `expect` is a test failure, not noise.
                extra = consumer.poll(timeout_ms=1500)
                for batch in extra.values():
                    records.extend(batch)
                break
    finally:
        consumer.close()
    return records


@pytest.fixture
def peers() -> Iterator[Peers]:
    """A signature-verifying webhook receiver per authority and one SMTP server."""
    secrets = {a: new_secret() for a in AUTHORITIES}
    hooks = {a: WebhookReceiver(secrets[a]) for a in AUTHORITIES}
    smtp = SmtpSink()
    for hook in hooks.values():
        hook.start()
    smtp.start()
    try:
        yield Peers(hooks, secrets, smtp)
    finally:
        for hook in hooks.values():
            hook.stop()
        smtp.stop()
