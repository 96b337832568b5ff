"""Tells the current level once a backfill has settled (the decision is `backfill.py`).

Runs in the risk-change consumer's thread, between batches: the directory it routes by
is the consumer's own, never read while another thread changes it.
"""

import logging
import time
from collections.abc import Callable

from schemas.alerts import AlertKind
from services.alerts.backfill import current_level_notice
from services.alerts.contacts import ContactFileWatcher
from services.alerts.metrics import AlertMetrics
from services.alerts.routing import Directory, endpoints_gone
from services.alerts.store import AlertStore, NewAlert

log = logging.getLogger("caresignal.alerts.current_level")


class CurrentLevelNotices:
    def __init__(
        self,
        store: AlertStore,
        contacts: ContactFileWatcher,
        metrics: AlertMetrics,
        settle_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.contacts = contacts
        self.metrics = metrics
        self.settle_s = settle_s
        self.clock = clock

    def run_once(self, directory: Directory) -> int:
        """Decide every settled backfill; returns how many notices were created."""
        now = self.clock()
        settled = self.store.settled_backfills(now - self.settle_s)
        if not settled:
            return 0
        mutes = self.store.live_mutes(now)
        book = self.contacts.book
        disabled = endpoints_gone(self.store.disabled_endpoints(), book)
        created = 0
        for pending in settled:
            latest = self.store.change_of(pending.alert_id)
            told = self.store.last_told_level(pending.scope, pending.subject)
            notice = current_level_notice(latest, told, directory, book, mutes, disabled)
            if notice is not None:
                location = directory.locations.get(latest.location_id or "")
                result = self.store.record(
                    [
                        NewAlert(
                            alert_id=notice.alert_id,
                            kind=AlertKind.current_level,
                            change=notice.change,
                            location_name=location.name if location else None,
                            recipients=notice.recipients,
                            deliveries=notice.deliveries,
                            published_at=now,
                        )
                    ],
                    now,
                )
                if result.created:
                    created += 1
                    self.metrics.alerts.labels(AlertKind.current_level.value, latest.new_level.value).inc()
                    log.info(
                        "history loaded for %s %s: told its current level %s once (last told %s)",
                        pending.scope,
                        pending.subject,
                        latest.new_level.value,
                        told.name,
                    )
            self.store.settle_backfill(pending)
        return created
