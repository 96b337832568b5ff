"""The alert store and outbox: SQLite by default, PostgreSQL when a URL says so.

An alert and its deliveries (one row per recipient and contact point) are written in
one transaction, and the consumer commits its Kafka offset only after that transaction:
a crash in between replays the change, and the deterministic alert id turns the replay
into a no-op. Deliveries are then sent from the table (the outbox), each with its own
attempt count and next-attempt time, so one failing receiver never holds up another.

Times are stored as epoch seconds (floats): comparable and timezone-free in both
databases.
"""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from schemas.alerts import AlertKind, Recipient
from schemas.risk import Level, LevelChange
from services.alerts.messages import AlertContent
from services.alerts.routing import Channel, DeliveryState, PlannedDelivery

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


class AlertNotFound(LookupError):
    pass


class MuteNotFound(LookupError):
    pass


def epoch(value: datetime) -> float:
    return value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class NewAlert:
    alert_id: str
    kind: AlertKind
    change: LevelChange
    location_name: str | None
    recipients: tuple[Recipient, ...]
    deliveries: list[PlannedDelivery]
    published_at: float
    parent_id: str | None = None
    reminder_number: int | None = None


@dataclass(frozen=True)
class RecordResult:
    created: list[str]
    duplicates: list[str]


@dataclass(frozen=True)
class DeliveryJob:
    delivery_id: str
    alert_id: str
    authority: str
    channel: Channel
    target: str
    attempts: int
    created_at: float
    published_at: float
    content: AlertContent
    recipient: Recipient


@dataclass(frozen=True)
class AttemptResult:
    delivery_id: str
    outcome: str  # delivered | retry | gone | refused | dead
    status: int | None
    detail: str | None
    duration_ms: float
    next_attempt_at: float | None  # for a retry


@dataclass(frozen=True)
class AlertFilter:
    authority: str | None = None
    location_id: str | None = None
    level: str | None = None
    state: str | None = None
    kind: str | None = None
    limit: int = 100
    before: float | None = None


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
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str) -> "AlertStore":
        store = cls(make_engine(url))
        store.create_schema()
        return store

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

    # --- writing alerts --------------------------------------------------------------

    def record(self, items: Sequence[NewAlert], now: float) -> RecordResult:
        """Store alerts with their deliveries in one transaction; known ids are skipped."""
        created: list[str] = []
        duplicates: list[str] = []
        if not items:
            return RecordResult(created, duplicates)
        with self._tx() as conn:
            ids = [i.alert_id for i in items]
            known = set(conn.scalars(select(alerts.c.id).where(alerts.c.id.in_(ids))))
            for item in items:
                if item.alert_id in known:
                    duplicates.append(item.alert_id)
                    continue
                known.add(item.alert_id)
                self._insert_alert(conn, item, now)
                created.append(item.alert_id)
        return RecordResult(created, duplicates)

    def _insert_alert(self, conn: Connection, item: NewAlert, now: float) -> None:
        change = item.change
        new_level = Level[change.new_level.value]
        if item.kind is not AlertKind.reminder:
            # A later change for the same subject resolves the earlier alerts.
            conn.execute(
                update(alerts)
                .where(
                    alerts.c.subject == change.key,
                    alerts.c.scope == change.scope,
                    alerts.c.state.in_(("open", "acknowledged")),
                )
                .values(state="resolved")
            )
        state = "resolved" if new_level is Level.none else "open"
        if item.kind is AlertKind.reminder:
            state = "open"
        conn.execute(
            alerts.insert().values(
                id=item.alert_id,
                kind=item.kind.value,
                parent_id=item.parent_id,
                change_id=change.change_id,
                scope=change.scope,
                subject=change.key,
                location_id=change.location_id,
                provider_id=change.provider_id,
                location_name=item.location_name,
                old_level=change.old_level.value,
                new_level=change.new_level.value,
                level_rank=int(new_level),
                change_json=change.model_dump_json(),
                recipients_json=json.dumps([r.model_dump(mode="json") for r in item.recipients], separators=(",", ":")),
                state=state,
                reminder_number=item.reminder_number,
                reminders_sent=0,
                published_at=item.published_at,
                created_at=now,
            )
        )
        if item.recipients:
            conn.execute(
                recipients.insert(),
                [
                    {
                        "alert_id": item.alert_id,
                        "authority": r.authority,
                        "roles": ",".join(role.value for role in r.roles),
                        "locations": "," + ",".join(r.locations) + ",",
                    }
                    for r in item.recipients
                ],
            )
        if item.deliveries:
            conn.execute(
                deliveries.insert(),
                [
                    {
                        "id": d.delivery_id,
                        "alert_id": item.alert_id,
                        "authority": d.authority,
                        "channel": d.channel.value,
                        "target": d.target,
                        "state": d.state.value,
                        "attempts": 0,
                        "created_at": now,
                        "next_attempt_at": now if d.state is DeliveryState.pending else None,
                    }
                    for d in item.deliveries
                ],
            )
        conn.execute(
            audit.insert().values(
                at=now,
                actor="system",
                action=f"alert.{item.kind.value}",
                alert_id=item.alert_id,
                detail=json.dumps(
                    {
                        "change_id": change.change_id,
                        "recipients": [r.authority for r in item.recipients],
                        "deliveries": {d.delivery_id: d.state.value for d in item.deliveries},
                    }
                ),
            )
        )
        if item.kind is AlertKind.reminder and item.parent_id:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == item.parent_id)
                .values(reminders_sent=alerts.c.reminders_sent + 1, last_reminder_at=now)
            )

    # --- the outbox ------------------------------------------------------------------

    def claim_due(self, now: float, limit: int, lease_s: float) -> list[DeliveryJob]:
        """Take up to `limit` due deliveries for `lease_s` seconds.

        A delivery whose sender died mid-flight becomes due again when its lease runs
        out, and is sent again under the same id (receivers deduplicate on it).
        """
        with self._tx() as conn:
            query = (
                select(deliveries, alerts.c.change_json, alerts.c.kind, alerts.c.location_name)
                .add_columns(alerts.c.recipients_json, alerts.c.reminder_number, alerts.c.published_at)
                .join(alerts, alerts.c.id == deliveries.c.alert_id)
                .where(
                    deliveries.c.state == DeliveryState.pending.value,
                    deliveries.c.next_attempt_at <= now,
                    or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until <= now),
                )
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
            )
            if self.dialect == "postgresql":
                query = query.with_for_update(of=deliveries, skip_locked=True)
            rows = conn.execute(query).mappings().all()
            if not rows:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_([r["id"] for r in rows]))
                .values(claimed_until=now + lease_s)
            )
        jobs: list[DeliveryJob] = []
        # Deliveries of one alert share its change and recipients: parse them once.
        parsed: dict[str, tuple[LevelChange, dict[str, Recipient]]] = {}
        for row in rows:
            if row["alert_id"] not in parsed:
                parsed[row["alert_id"]] = (
                    LevelChange.model_validate_json(row["change_json"]),
                    {r["authority"]: Recipient.model_validate(r) for r in json.loads(row["recipients_json"])},
                )
            change, recipients = parsed[row["alert_id"]]
            jobs.append(
                DeliveryJob(
                    delivery_id=row["id"],
                    alert_id=row["alert_id"],
                    authority=row["authority"],
                    channel=Channel(row["channel"]),
                    target=row["target"],
                    attempts=row["attempts"],
                    created_at=row["created_at"],
                    published_at=row["published_at"],
                    content=AlertContent(
                        alert_id=row["alert_id"],
                        kind=AlertKind(row["kind"]),
                        change=change,
                        location_name=row["location_name"],
                        reminder_number=row["reminder_number"],
                    ),
                    recipient=recipients.get(row["authority"])
                    or Recipient(authority=row["authority"], roles=[], locations=[]),
                )
            )
        return jobs

    def finish(self, result: AttemptResult, now: float, endpoint_url: str | None = None) -> None:
        """Record one attempt and move the delivery on."""
        self.finish_many([(result, now, endpoint_url)])

    def finish_many(self, results: Sequence[tuple[AttemptResult, float, str | None]]) -> None:
        """Record several attempts in one transaction (one fsync, one turn at the lock)."""
        with self._tx() as conn:
            for result, now, endpoint_url in results:
                self._finish(conn, result, now, endpoint_url)

    def _finish(self, conn: Connection, result: AttemptResult, now: float, endpoint_url: str | None) -> None:
        conn.execute(
            attempts.insert().values(
                delivery_id=result.delivery_id,
                at=now,
                outcome=result.outcome,
                status=result.status,
                detail=(result.detail or "")[:500] or None,
                duration_ms=result.duration_ms,
            )
        )
        values: dict[str, Any] = {
            "attempts": deliveries.c.attempts + 1,
            "claimed_until": None,
            "last_status": result.status,
            "last_error": None if result.outcome == "delivered" else (result.detail or "")[:500],
        }
        if result.outcome == "delivered":
            values.update(state=DeliveryState.delivered.value, delivered_at=now, next_attempt_at=None)
        elif result.outcome == "retry":
            values.update(next_attempt_at=result.next_attempt_at)
        elif result.outcome == "gone":
            values.update(state=DeliveryState.endpoint_gone.value, next_attempt_at=None)
        else:  # refused, dead
            values.update(state=DeliveryState.dead.value, next_attempt_at=None)
        # Only a delivery still pending moves: a late answer never undoes a decision.
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == result.delivery_id, deliveries.c.state == DeliveryState.pending.value)
            .values(**values)
        )
        if result.outcome in ("dead", "refused"):
            alert_id = conn.scalar(select(deliveries.c.alert_id).where(deliveries.c.id == result.delivery_id))
            conn.execute(
                audit.insert().values(
                    at=now,
                    actor="system",
                    action="delivery.dead",
                    alert_id=alert_id,
                    detail=json.dumps({"delivery_id": result.delivery_id, "reason": result.detail}),
                )
            )
        if result.outcome == "gone":
            self._disable_endpoint(conn, result, now, endpoint_url or "")

    def _disable_endpoint(self, conn: Connection, result: AttemptResult, now: float, url: str) -> None:
        target = conn.scalar(select(deliveries.c.target).where(deliveries.c.id == result.delivery_id))
        if target is None:
            return
        conn.execute(
            self._insert_ignore(
                endpoints,
                [{"endpoint_id": target, "url": url, "disabled_at": now, "reason": "410 Gone from the receiver"}],
                "endpoint_id",
            )
        )
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.channel == Channel.webhook.value,
                deliveries.c.target == target,
                deliveries.c.state == DeliveryState.pending.value,
            )
            .values(state=DeliveryState.endpoint_gone.value, next_attempt_at=None, claimed_until=None)
        )
        conn.execute(
            audit.insert().values(
                at=now,
                actor="system",
                action="endpoint.disabled",
                detail=json.dumps({"endpoint_id": target, "url": url, "reason": "410 Gone"}),
            )
        )

    def disabled_endpoints(self) -> dict[str, str]:
        """endpoint id -> the URL that answered 410."""
        with self.engine.connect() as conn:
            return {row.endpoint_id: row.url for row in conn.execute(select(endpoints))}

    def enable_endpoint(self, endpoint_id: str, actor: str, now: float) -> bool:
        with self._tx() as conn:
            gone = conn.execute(endpoints.delete().where(endpoints.c.endpoint_id == endpoint_id)).rowcount
            if gone:
                conn.execute(
                    audit.insert().values(
                        at=now,
                        actor=actor,
                        action="endpoint.enabled",
                        detail=json.dumps({"endpoint_id": endpoint_id}),
                    )
                )
            return bool(gone)

    def outbox_depth(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.state == DeliveryState.pending.value)
                )
                or 0
            )

    def count_deliveries(self, state: DeliveryState) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.scalar(select(func.count()).select_from(deliveries).where(deliveries.c.state == state.value)) or 0
            )

    # --- mutes -----------------------------------------------------------------------

    def live_mutes(self, now: float) -> set[tuple[str, str]]:
        """(authority, location) of every mute in force."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mutes.c.authority, mutes.c.location_id).where(mutes.c.until > now, mutes.c.revoked_at.is_(None))
            )
            return {(row.authority, row.location_id) for row in rows}

    def add_mute(self, authority: str, location_id: str, until: float, actor: str, now: float) -> dict[str, Any]:
        with self._tx() as conn:
            inserted = conn.execute(
                mutes.insert().values(
                    authority=authority, location_id=location_id, until=until, created_by=actor, created_at=now
                )
            ).inserted_primary_key
            assert inserted is not None
            mute_id = inserted[0]
            conn.execute(
                audit.insert().values(
                    at=now,
                    actor=actor,
                    action="mute.created",
                    detail=json.dumps(
                        {"mute_id": mute_id, "authority": authority, "location_id": location_id, "until": until}
                    ),
                )
            )
            row = conn.execute(select(mutes).where(mutes.c.id == mute_id)).mappings().one()
            return dict(row)

    def list_mutes(self, authority: str | None, now: float, include_expired: bool = False) -> list[dict[str, Any]]:
        query = select(mutes).order_by(mutes.c.id)
        if authority is not None:
            query = query.where(mutes.c.authority == authority)
        if not include_expired:
            query = query.where(mutes.c.until > now, mutes.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def revoke_mute(self, mute_id: int, authority: str | None, actor: str, now: float) -> dict[str, Any]:
        with self._tx() as conn:
            query = select(mutes).where(mutes.c.id == mute_id)
            if authority is not None:
                query = query.where(mutes.c.authority == authority)
            row = conn.execute(query).mappings().first()
            if row is None:
                raise MuteNotFound(mute_id)
            conn.execute(
                update(mutes)
                .where(mutes.c.id == mute_id, mutes.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_by=actor)
            )
            conn.execute(
                audit.insert().values(
                    at=now, actor=actor, action="mute.revoked", detail=json.dumps({"mute_id": mute_id})
                )
            )
            return dict(conn.execute(select(mutes).where(mutes.c.id == mute_id)).mappings().one())

    # --- reading and acknowledging ---------------------------------------------------

    @staticmethod
    def _received_by(authority: str) -> Any:
        return alerts.c.id.in_(select(recipients.c.alert_id).where(recipients.c.authority == authority))

    def list_alerts(self, flt: AlertFilter, visible_to: str | None) -> list[dict[str, Any]]:
        query = select(alerts).order_by(alerts.c.created_at.desc(), alerts.c.id).limit(flt.limit)
        conditions = []
        if visible_to is not None:
            conditions.append(self._received_by(visible_to))
        if flt.authority is not None:
            conditions.append(self._received_by(flt.authority))
        if flt.location_id is not None:
            conditions.append(
                or_(
                    alerts.c.location_id == flt.location_id,
                    alerts.c.id.in_(
                        select(recipients.c.alert_id).where(recipients.c.locations.contains(f",{flt.location_id},"))
                    ),
                )
            )
        if flt.level is not None:
            conditions.append(alerts.c.new_level == flt.level)
        if flt.state is not None:
            conditions.append(alerts.c.state == flt.state)
        if flt.kind is not None:
            conditions.append(alerts.c.kind == flt.kind)
        if flt.before is not None:
            conditions.append(alerts.c.created_at < flt.before)
        if conditions:
            query = query.where(and_(*conditions))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def received(self, alert_id: str, authority: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.scalar(
                    select(func.count())
                    .select_from(recipients)
                    .where(recipients.c.alert_id == alert_id, recipients.c.authority == authority)
                )
                or 0
            ) > 0

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
            if row is None:
                raise AlertNotFound(alert_id)
            result = dict(row)
            result["deliveries"] = [
                dict(d)
                for d in conn.execute(
                    select(deliveries).where(deliveries.c.alert_id == alert_id).order_by(deliveries.c.id)
                ).mappings()
            ]
            ids = [d["id"] for d in result["deliveries"]]
            log = conn.execute(
                select(attempts).where(attempts.c.delivery_id.in_(ids)).order_by(attempts.c.at, attempts.c.id)
            ).mappings()
            by_delivery: dict[str, list[dict[str, Any]]] = {}
            for entry in log:
                by_delivery.setdefault(entry["delivery_id"], []).append(dict(entry))
            for d in result["deliveries"]:
                d["attempt_log"] = by_delivery.get(d["id"], [])
            result["audit"] = [
                dict(a)
                for a in conn.execute(
                    select(audit).where(audit.c.alert_id == alert_id).order_by(audit.c.at, audit.c.id)
                ).mappings()
            ]
            return result

    def acknowledge(self, alert_id: str, actor: str, now: float) -> dict[str, Any]:
        """Acknowledge an alert (a reminder acknowledges the escalation it repeats)."""
        with self._tx() as conn:
            row = conn.execute(select(alerts.c.id, alerts.c.parent_id).where(alerts.c.id == alert_id)).first()
            if row is None:
                raise AlertNotFound(alert_id)
            target = row.parent_id or row.id
            family = or_(alerts.c.id == target, alerts.c.parent_id == target)
            conn.execute(
                update(alerts)
                .where(family, alerts.c.acknowledged_at.is_(None))
                .values(acknowledged_at=now, acknowledged_by=actor)
            )
            conn.execute(update(alerts).where(family, alerts.c.state == "open").values(state="acknowledged"))
            conn.execute(
                audit.insert().values(
                    at=now,
                    actor=actor,
                    action="alert.acknowledged",
                    alert_id=target,
                    detail=json.dumps({"via": alert_id}),
                )
            )
        return self.get_alert(alert_id)

    def due_reminders(self, now: float, interval_s: float, limit: int = 500) -> list[dict[str, Any]]:
        """Open (unacknowledged, unresolved) Major escalations whose last word is old."""
        last = func.coalesce(alerts.c.last_reminder_at, alerts.c.created_at)
        query = (
            select(alerts)
            .where(
                alerts.c.kind == AlertKind.escalation.value,
                alerts.c.level_rank == int(Level.major),
                alerts.c.state == "open",
                alerts.c.acknowledged_at.is_(None),
                last + interval_s <= now,
            )
            .order_by(alerts.c.created_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
