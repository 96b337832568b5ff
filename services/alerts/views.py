"""What the alert API returns: stored rows turned into documented response models."""

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from schemas.alerts import Recipient
from schemas.risk import LevelChange
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.store import from_epoch


class AttemptView(BaseModel):
    at: datetime
    outcome: DeliveryOutcome
    status: int | None
    detail: str | None
    duration_ms: float | None


class DeliveryView(BaseModel):
    delivery_id: str
    authority: str
    channel: str
    target: str
    state: DeliveryOutcome
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None
    attempt_log: list[AttemptView] = []


class AuditView(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any] | None


class AlertSummary(BaseModel):
    alert_id: str
    kind: str
    state: str
    scope: str
    location_id: str | None
    location_name: str | None
    provider_id: str | None
    old_level: str
    new_level: str
    change_id: str
    parent_id: str | None
    reminder_number: int | None
    recipients: list[Recipient]
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AlertDetail(AlertSummary):
    change: LevelChange
    deliveries: list[DeliveryView]
    audit: list[AuditView]


class MuteView(BaseModel):
    mute_id: int
    authority: str
    location_id: str
    until: datetime
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None


def _at(value: float | None) -> datetime | None:
    return from_epoch(value)


def _required(value: float) -> datetime:
    result = from_epoch(value)
    assert result is not None
    return result


def summary(row: dict[str, Any], visible_to: str | None = None) -> AlertSummary:
    recipients = [Recipient.model_validate(r) for r in json.loads(row["recipients_json"])]
    return AlertSummary(
        alert_id=row["id"],
        kind=row["kind"],
        state=row["state"],
        scope=row["scope"],
        location_id=row["location_id"],
        location_name=row["location_name"],
        provider_id=row["provider_id"],
        old_level=row["old_level"],
        new_level=row["new_level"],
        change_id=row["change_id"],
        parent_id=row["parent_id"],
        reminder_number=row["reminder_number"],
        # An authority sees that it was told, not who else was.
        recipients=[r for r in recipients if visible_to is None or r.authority == visible_to],
        created_at=_required(row["created_at"]),
        acknowledged_at=_at(row["acknowledged_at"]),
        acknowledged_by=row["acknowledged_by"],
    )


def detail(row: dict[str, Any], visible_to: str | None = None) -> AlertDetail:
    base = summary(row, visible_to)
    deliveries = [
        DeliveryView(
            delivery_id=d["id"],
            authority=d["authority"],
            channel=d["channel"],
            target=d["target"],
            state=DeliveryOutcome(d["state"]),
            attempts=d["attempts"],
            created_at=_required(d["created_at"]),
            next_attempt_at=_at(d["next_attempt_at"]),
            delivered_at=_at(d["delivered_at"]),
            last_status=d["last_status"],
            last_error=d["last_error"],
            attempt_log=[
                AttemptView(
                    at=_required(a["at"]),
                    outcome=DeliveryOutcome(a["outcome"]),
                    status=a["status"],
                    detail=a["detail"],
                    duration_ms=a["duration_ms"],
                )
                for a in d["attempt_log"]
            ],
        )
        for d in row["deliveries"]
        if visible_to is None or d["authority"] == visible_to
    ]
    audit = [
        AuditView(at=_required(a["at"]), actor=a["actor"], action=a["action"], detail=_audit_detail(a, visible_to))
        for a in row["audit"]
    ]
    return AlertDetail(
        **base.model_dump(),
        change=LevelChange.model_validate_json(row["change_json"]),
        deliveries=deliveries,
        audit=audit,
    )


def _audit_detail(entry: dict[str, Any], visible_to: str | None) -> dict[str, Any] | None:
    if entry["detail"] is None:
        return None
    value: dict[str, Any] = json.loads(entry["detail"])
    if visible_to is not None:
        # The system's record of who was told names other authorities: need to know.
        value.pop("recipients", None)
        value.pop("deliveries", None)
    return value


def mute(row: dict[str, Any]) -> MuteView:
    return MuteView(
        mute_id=row["id"],
        authority=row["authority"],
        location_id=row["location_id"],
        until=_required(row["until"]),
        created_by=row["created_by"],
        created_at=_required(row["created_at"]),
        revoked_at=_at(row["revoked_at"]),
        revoked_by=row["revoked_by"],
    )
