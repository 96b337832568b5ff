"""What the alert service sends: the webhook body (and the facts every email carries).

The body follows the Standard Webhooks payload shape (`type`, `timestamp`, `data`). It
carries the rules that fired with evidence counts, times, types and sources, never the
content of an event: nothing here can hold a name, a date of birth, an NHS number or
free text about a person. Receivers must deduplicate on the `webhook-id` header (equal
to `data.delivery_id`): a delivery interrupted by a crash is sent again with the same id.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from schemas.events import Contract
from schemas.identifiers import LocationId, OnsCode, ProviderId
from schemas.risk import Action, LevelName

WEBHOOK_TYPE_PREFIX = "caresignal.alert."


class AlertKind(StrEnum):
    escalation = "escalation"
    # The level fell: the "cleared" notice, always sent, even when acknowledged or muted.
    de_escalation = "de-escalation"
    # A repeat of an unacknowledged Major alert.
    reminder = "reminder"
    # After history was loaded (a backfill): the level now, told once instead of every
    # change about the past; `old_level` is the level the recipients were last told.
    current_level = "current-level"


KIND_LABELS: dict[AlertKind, str] = {
    AlertKind.escalation: "RISK RAISED",
    AlertKind.de_escalation: "RISK LOWERED",
    AlertKind.reminder: "REMINDER: UNACKNOWLEDGED",
    AlertKind.current_level: "CURRENT RISK LEVEL (history loaded)",
}


class RecipientRole(StrEnum):
    host = "host"
    placing = "placing"


class EvidenceSummary(Contract):
    """How much evidence of one kind stands behind a rule, and when it happened."""

    type: str
    source: str
    count: Annotated[int, Field(ge=1)]
    first: AwareDatetime
    last: AwareDatetime


class Reason(Contract):
    rule_id: str
    family: str
    level: LevelName
    description: str
    measure: float | None = None
    evidence_count: int
    evidence: list[EvidenceSummary]
    # Event ids, so a lead can ask the source for the record; ids are opaque.
    evidence_ids: list[str]


class Recipient(Contract):
    authority: OnsCode
    roles: list[RecipientRole]
    # For an organisation-level alert: which of its locations make this authority a
    # recipient.
    locations: list[LocationId]


class AlertLinks(Contract):
    location: str | None
    alert: str


class AlertData(Contract):
    alert_id: str
    delivery_id: str
    kind: AlertKind
    label: str
    scope: Literal["location", "organisation"]
    location_id: LocationId | None
    location_name: str | None
    provider_id: ProviderId | None
    locations: list[LocationId]
    old_level: LevelName
    new_level: LevelName
    meaning: str
    reasons: list[Reason]
    actions: list[Action]
    policy_version: str
    change_id: str
    decided_at: AwareDatetime
    reminder_number: int | None = None
    recipient: Recipient
    links: AlertLinks


class AlertNotification(Contract):
    """The JSON body of every webhook; `type` is `caresignal.alert.<kind>`."""

    type: Literal[
        "caresignal.alert.escalation",
        "caresignal.alert.de-escalation",
        "caresignal.alert.reminder",
        "caresignal.alert.current-level",
    ]
    timestamp: datetime
    data: AlertData
