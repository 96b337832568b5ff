"""Reminders for Major alerts nobody has acknowledged, at a fixed interval.

A reminder is an alert of its own (kind `reminder`, id `<alert>-r<n>`), sent to the
recipients snapshotted in the original alert: the id makes a restart mid-round harmless.
It stops as soon as the alert is acknowledged or a later change resolves it.
"""

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from schemas.alerts import AlertKind, Recipient
from schemas.risk import Level, LevelChange
from services.alerts.contacts import ContactFileWatcher
from services.alerts.metrics import AlertMetrics
from services.alerts.routing import (
    endpoints_gone,
    muted_authorities,
    plan_deliveries,
    reminder_id_for,
    subject_locations,
)
from services.alerts.store import AlertStore, NewAlert

log = logging.getLogger("caresignal.alerts.reminders")


class Reminders:
    def __init__(
        self,
        store: AlertStore,
        contacts: ContactFileWatcher,
        metrics: AlertMetrics,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.contacts = contacts
        self.metrics = metrics
        self.interval_s = interval_s
        self.clock = clock

    def reminder_for(
        self, row: dict[str, Any], now: float, mutes: set[tuple[str, str]], disabled: frozenset[str]
    ) -> NewAlert:
        change = LevelChange.model_validate_json(row["change_json"])
        recipients = tuple(Recipient.model_validate(r) for r in json.loads(row["recipients_json"]))
        number = int(row["reminders_sent"]) + 1
        alert_id = reminder_id_for(row["id"], number)
        muted = muted_authorities(recipients, subject_locations(change), mutes)
        plans = plan_deliveries(
            alert_id,
            AlertKind.reminder,
            Level[change.old_level.value],
            Level[change.new_level.value],
            recipients,
            self.contacts.book,
            muted,
            disabled,
        )
        return NewAlert(
            alert_id=alert_id,
            kind=AlertKind.reminder,
            change=change,
            location_name=row["location_name"],
            recipients=recipients,
            deliveries=plans,
            published_at=now,
            parent_id=row["id"],
            reminder_number=number,
        )

    def run_once(self) -> int:
        """Create the reminders that are due; returns how many."""
        now = self.clock()
        due = self.store.due_reminders(now, self.interval_s)
        if not due:
            return 0
        # Read once per round, as the consumer does once per batch.
        mutes = self.store.live_mutes(now)
        disabled = endpoints_gone(self.store.disabled_endpoints(), self.contacts.book)
        result = self.store.record([self.reminder_for(row, now, mutes, disabled) for row in due], now)
        for _ in result.created:
            self.metrics.alerts.labels(AlertKind.reminder.value, "major").inc()
        if result.created:
            log.info("sent %d reminder(s) for unacknowledged Major alerts", len(result.created))
        return len(result.created)
