"""Subjects whose history was loaded: the latest backfill change of each, until its current
level has been told (or needed no telling) or a live change made it moot."""

from dataclasses import dataclass

from sqlalchemy import Connection, and_, select

from schemas.risk import Level, LevelChange
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.tables import StoreBase, alerts, backfill_pending, deliveries


@dataclass(frozen=True)
class PendingBackfill:
    scope: str
    subject: str
    alert_id: str
    arrived_at: float


class PendingStore(StoreBase):
    def _note_backfill(self, conn: Connection, change: LevelChange, alert_id: str, now: float) -> None:
        """Within the alert's transaction: this change is now the subject's latest from history."""
        key = and_(backfill_pending.c.scope == change.scope, backfill_pending.c.subject == change.key)
        known = conn.execute(select(backfill_pending.c.sequence).where(key)).first()
        if known is None:
            conn.execute(
                backfill_pending.insert().values(
                    scope=change.scope,
                    subject=change.key,
                    alert_id=alert_id,
                    sequence=change.sequence,
                    arrived_at=now,
                )
            )
        elif change.sequence >= known.sequence:
            conn.execute(
                backfill_pending.update().where(key).values(alert_id=alert_id, sequence=change.sequence, arrived_at=now)
            )

    def settled_backfills(self, arrived_before: float, limit: int = 500) -> list[PendingBackfill]:
        """Subjects with no newer change since `arrived_before`, oldest first."""
        query = (
            select(backfill_pending)
            .where(backfill_pending.c.arrived_at <= arrived_before)
            .order_by(backfill_pending.c.arrived_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [PendingBackfill(r.scope, r.subject, r.alert_id, r.arrived_at) for r in conn.execute(query)]

    def change_of(self, alert_id: str) -> LevelChange:
        with self.engine.connect() as conn:
            text = conn.scalar(select(alerts.c.change_json).where(alerts.c.id == alert_id))
        if text is None:
            raise LookupError(alert_id)
        return LevelChange.model_validate_json(text)

    def last_told_level(self, scope: str, subject: str) -> Level:
        """The level of the subject's latest alert that reached someone (not history, not a
        reminder); `none` when nobody was ever told anything."""
        told = select(deliveries.c.alert_id).where(deliveries.c.state == DeliveryOutcome.delivered.value)
        query = select(alerts.c.change_json, alerts.c.new_level).where(
            alerts.c.scope == scope,
            alerts.c.subject == subject,
            alerts.c.state != "history",
            alerts.c.kind != "reminder",
            alerts.c.id.in_(told),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return Level.none
        # The scorer's sequence orders a subject's changes; a current-level notice carries
        # the sequence of the backfill change it sums up.
        latest = max(rows, key=lambda r: LevelChange.model_validate_json(r.change_json).sequence)
        return Level[latest.new_level]

    def settle_backfill(self, pending: PendingBackfill) -> None:
        """Done with this backfill; a newer one that arrived meanwhile stays pending."""
        with self._tx() as conn:
            conn.execute(
                backfill_pending.delete().where(
                    backfill_pending.c.scope == pending.scope,
                    backfill_pending.c.subject == pending.subject,
                    backfill_pending.c.alert_id == pending.alert_id,
                )
            )
