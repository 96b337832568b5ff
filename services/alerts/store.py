"""The alert store and outbox: SQLite by default, PostgreSQL when a URL says so.

An alert and its deliveries (one row per recipient and contact point) are written in
one transaction, and the consumer commits its Kafka offset only after that transaction:
a crash in between replays the change, and the deterministic alert id turns the replay
into a no-op. Deliveries are then sent from the table (the outbox), each with its own
attempt count and next-attempt time, so one failing receiver never holds up another.

The parts: `tables.py` (schema, engine), `outbox.py` (claims and attempt outcomes),
`queries.py` (what the API and reminders read, acknowledgements, mutes); this module
writes alerts and puts the parts together.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from schemas.alerts import AlertKind, Recipient
from schemas.risk import Level, LevelChange
from services.alerts.board.store import BoardStore
from services.alerts.outbox import AttemptResult, DeliveryJob, OutboxStore
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.pending import PendingStore
from services.alerts.queries import AlertFilter, AlertNotFound, MuteNotFound, PeopleQueries
from services.alerts.routing import PlannedDelivery
from services.alerts.tables import (
    alerts,
    audit,
    backfill_pending,
    deliveries,
    from_epoch,
    make_engine,
    metadata,
    recipients,
)

__all__ = [
    "AlertFilter",
    "AlertNotFound",
    "AlertStore",
    "AttemptResult",
    "DeliveryJob",
    "MuteNotFound",
    "NewAlert",
    "RecordResult",
    "from_epoch",
    "make_engine",
    "metadata",
]


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


class AlertStore(OutboxStore, PeopleQueries, PendingStore, BoardStore):
    @classmethod
    def open(cls, url: str) -> "AlertStore":
        store = cls(make_engine(url))
        store.create_schema()
        return store

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
        # The board's levels come from every change, backfill included, whoever scored it.
        self.note_change(conn, change, now)
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
        history = change.backfill and item.kind in (AlertKind.escalation, AlertKind.de_escalation)
        if history:
            # A decision about the past: recorded and visible, never sent, never reminded.
            state = "history"
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
                        "next_attempt_at": now if d.state is DeliveryOutcome.pending else None,
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
                        **({"history": "from a backfill: recorded, not sent"} if history else {}),
                    }
                ),
            )
        )
        if history:
            self._note_backfill(conn, change, item.alert_id, now)
        elif item.kind in (AlertKind.escalation, AlertKind.de_escalation):
            # A live change is told as usual: no summary of the history before it is due.
            conn.execute(
                backfill_pending.delete().where(
                    backfill_pending.c.scope == change.scope, backfill_pending.c.subject == change.key
                )
            )
        if item.kind is AlertKind.reminder and item.parent_id:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == item.parent_id)
                .values(reminders_sent=alerts.c.reminders_sent + 1, last_reminder_at=now)
            )
