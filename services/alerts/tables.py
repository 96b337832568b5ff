"""The alert store's tables, and the connection every part of the store shares.

Times are stored as epoch seconds (floats): comparable and timezone-free in both
databases.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    # For a reminder: the escalation it repeats.
    Column("parent_id", String(64), ForeignKey("alerts.id"), nullable=True),
    Column("change_id", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    # location id, or provider id for an organisation-level alert
    Column("subject", String(32), nullable=False),
    Column("location_id", String(32), nullable=True),
    Column("provider_id", String(32), nullable=True),
    Column("location_name", String(200), nullable=True),
    Column("old_level", String(16), nullable=False),
    Column("new_level", String(16), nullable=False),
    Column("level_rank", Integer, nullable=False),
    Column("change_json", Text, nullable=False),
    Column("recipients_json", Text, nullable=False),
    # open -> acknowledged; either -> resolved when a later change for the subject lands
    Column("state", String(16), nullable=False),
    Column("reminder_number", Integer, nullable=True),
    Column("reminders_sent", Integer, nullable=False, default=0),
    Column("last_reminder_at", Double, nullable=True),
    Column("published_at", Double, nullable=False),  # Kafka timestamp of the change
    Column("created_at", Double, nullable=False),
    Column("acknowledged_at", Double, nullable=True),
    Column("acknowledged_by", String(100), nullable=True),
    Index("ix_alerts_subject", "subject", "created_at"),
    Index("ix_alerts_state", "state", "kind", "level_rank"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("alert_id", String(64), ForeignKey("alerts.id"), nullable=False),
    Column("authority", String(16), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Double, nullable=False),
    Column("next_attempt_at", Double, nullable=True),
    Column("claimed_until", Double, nullable=True),
    Column("delivered_at", Double, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
    Index("ix_deliveries_alert", "alert_id"),
)

attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(64), ForeignKey("deliveries.id"), nullable=False),
    Column("at", Double, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status", Integer, nullable=True),
    Column("detail", String(500), nullable=True),
    Column("duration_ms", Double, nullable=True),
    Index("ix_attempts_delivery", "delivery_id"),
)

recipients = Table(
    "alert_recipients",
    metadata,
    Column("alert_id", String(64), ForeignKey("alerts.id"), primary_key=True),
    Column("authority", String(16), primary_key=True),
    Column("roles", String(40), nullable=False),
    # ",1-101234567,1-102345678," so that a LIKE on ",<id>," matches whole ids only
    Column("locations", Text, nullable=False),
    Index("ix_recipients_authority", "authority"),
)

mutes = Table(
    "mutes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(16), nullable=False),
    Column("location_id", String(32), nullable=False),
    Column("until", Double, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
    Column("revoked_by", String(100), nullable=True),
    Index("ix_mutes_lookup", "authority", "location_id"),
)

endpoints = Table(
    "disabled_endpoints",
    metadata,
    Column("endpoint_id", String(64), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("disabled_at", Double, nullable=False),
    Column("reason", String(300), nullable=False),
)

# One row per subject whose latest change came from loading history: its current level
# may still need telling once the backfill settles (see backfill.py). Written in the
# transaction of the alert, removed by a live change or once decided.
backfill_pending = Table(
    "backfill_pending",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("subject", String(32), primary_key=True),
    # The latest backfill alert of the subject, and when it arrived (wall time).
    Column("alert_id", String(64), ForeignKey("alerts.id"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("arrived_at", Double, nullable=False),
)

audit = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("alert_id", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_audit_alert", "alert_id"),
)


def epoch(value: datetime) -> float:
    return value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling is off so that every writing transaction
    # starts with BEGIN IMMEDIATE: two writers then queue on busy_timeout instead of one
    # failing with "database is locked" when it upgrades a read lock.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Readers need no lock in WAL mode; only writers queue for it up front.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writes") else "BEGIN")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class StoreBase:
    """The engine and transactions; the store's parts (outbox, queries, writing) build on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(writes=True)
            with conn.begin():
                yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def _insert_ignore(self, table: Table, rows: Sequence[dict[str, Any]], key: str) -> Any:
        dialect = pg_dialect if self.dialect == "postgresql" else sqlite_dialect
        return dialect.insert(table).values(rows).on_conflict_do_nothing(index_elements=[key])
