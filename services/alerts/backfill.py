"""What authorities are told after history is loaded (a backfill). Pure: no I/O, no clock.

A change caused by loading history (`LevelChange.backfill`) is recorded as an alert in
state `history` and sent to nobody: thirty changes about last year are not thirty alerts
today. Once a subject (location or organisation) has had no newer change for the settle
time, its recipients are told its current level once, in a `current-level` notice, if it
differs from the level they were last actually told. A live change before then is sent as
usual and makes the notice moot.
"""

from collections.abc import Set
from dataclasses import dataclass

from schemas.alerts import AlertKind, Recipient
from schemas.risk import Level, LevelChange, LevelName
from services.alerts.contacts import ContactBook
from services.alerts.routing import (
    Directory,
    PlannedDelivery,
    current_level_id_for,
    muted_authorities,
    plan_deliveries,
    route,
    subject_locations,
)


def settled(arrived_at: float, now: float, settle_s: float) -> bool:
    """No newer change for the subject has arrived for `settle_s` seconds."""
    return now - arrived_at >= settle_s


def current_level_change(latest: LevelChange, told: Level) -> LevelChange | None:
    """The change a current-level notice carries: the latest one's level, reasons and
    actions, from the level last told. None when the recipients already know it."""
    now = Level[latest.new_level.value]
    if now == told:
        return None
    return latest.model_copy(
        update={
            "old_level": LevelName(told.name),
            "direction": "escalation" if now > told else "de-escalation",
        }
    )


@dataclass(frozen=True)
class CurrentLevelNotice:
    alert_id: str
    change: LevelChange
    recipients: tuple[Recipient, ...]
    deliveries: list[PlannedDelivery]


def current_level_notice(
    latest: LevelChange,
    told: Level,
    directory: Directory,
    contacts: ContactBook,
    live_mutes: Set[tuple[str, str]],
    disabled_endpoints: frozenset[str] = frozenset(),
) -> CurrentLevelNotice | None:
    """The one notice due for a settled backfill, to the recipients as the directory stands
    now, or None. Its id derives from the latest backfill change: deciding again after a
    restart gives the same notice, which the store then already holds."""
    change = current_level_change(latest, told)
    if change is None:
        return None
    alert_id = current_level_id_for(latest.change_id)
    recipients = route(change, directory)
    muted = muted_authorities(recipients, subject_locations(change), live_mutes)
    plans = plan_deliveries(
        alert_id,
        AlertKind.current_level,
        told,
        Level[change.new_level.value],
        recipients,
        contacts,
        muted,
        disabled_endpoints,
    )
    return CurrentLevelNotice(alert_id, change, recipients, plans)
