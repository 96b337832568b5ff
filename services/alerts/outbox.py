"""The outbox: due deliveries claimed with a lease, each attempt recorded, 410'd endpoints."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from schemas.alerts import AlertKind, Recipient
from schemas.risk import LevelChange
from services.alerts.messages import AlertContent
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.routing import Channel
from services.alerts.tables import StoreBase, alerts, attempts, audit, deliveries, endpoints


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
    outcome: DeliveryOutcome  # one of ATTEMPT_OUTCOMES
    status: int | None
    detail: str | None
    duration_ms: float
    next_attempt_at: float | None  # for a retry


class OutboxStore(StoreBase):
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
                    deliveries.c.state == DeliveryOutcome.pending.value,
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
                outcome=result.outcome.value,
                status=result.status,
                detail=(result.detail or "")[:500] or None,
                duration_ms=result.duration_ms,
            )
        )
        values: dict[str, Any] = {
            "attempts": deliveries.c.attempts + 1,
            "claimed_until": None,
            "last_status": result.status,
            "last_error": None if result.outcome is DeliveryOutcome.delivered else (result.detail or "")[:500],
        }
        if result.outcome is DeliveryOutcome.delivered:
            values.update(state=DeliveryOutcome.delivered.value, delivered_at=now, next_attempt_at=None)
        elif result.outcome is DeliveryOutcome.retry:
            values.update(next_attempt_at=result.next_attempt_at)
        elif result.outcome is DeliveryOutcome.endpoint_gone:
            values.update(state=DeliveryOutcome.endpoint_gone.value, next_attempt_at=None)
        else:  # refused, dead
            values.update(state=DeliveryOutcome.dead.value, next_attempt_at=None)
        # Only a delivery still pending moves: a late answer never undoes a decision.
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == result.delivery_id, deliveries.c.state == DeliveryOutcome.pending.value)
            .values(**values)
        )
        if result.outcome in (DeliveryOutcome.dead, DeliveryOutcome.refused):
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
        if result.outcome is DeliveryOutcome.endpoint_gone:
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
                deliveries.c.state == DeliveryOutcome.pending.value,
            )
            .values(state=DeliveryOutcome.endpoint_gone.value, next_attempt_at=None, claimed_until=None)
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
                    .where(deliveries.c.state == DeliveryOutcome.pending.value)
                )
                or 0
            )

    def oldest_pending_created_at(self) -> float | None:
        """When the longest-waiting delivery was planned: how late the outbox runs."""
        with self.engine.connect() as conn:
            oldest = conn.scalar(
                select(func.min(deliveries.c.created_at)).where(deliveries.c.state == DeliveryOutcome.pending.value)
            )
            return None if oldest is None else float(oldest)

    def count_deliveries(self, state: DeliveryOutcome) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.scalar(select(func.count()).select_from(deliveries).where(deliveries.c.state == state.value)) or 0
            )
