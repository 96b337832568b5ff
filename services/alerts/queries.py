"""What people ask of the store: alerts they may see, acknowledgements, mutes, due reminders."""

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from schemas.alerts import AlertKind
from schemas.risk import Level
from services.alerts.tables import StoreBase, alerts, attempts, audit, deliveries, mutes, recipients


class AlertNotFound(LookupError):
    pass


class MuteNotFound(LookupError):
    pass


@dataclass(frozen=True)
class AlertFilter:
    authority: str | None = None
    location_id: str | None = None
    level: str | None = None
    state: str | None = None
    kind: str | None = None
    limit: int = 100
    before: float | None = None


class PeopleQueries(StoreBase):
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
