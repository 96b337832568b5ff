"""The outbox's oldest waiting delivery, the signal of the "alert not delivered in time"
rule: read from the real database at scrape time, SQLite and PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from services.alerts.metrics import AlertMetrics, pending_age
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.store import AlertStore, AttemptResult
from tests.test_alert_store import T0, change, new_alert

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    else:
        url = request.getfixturevalue("postgres_database_url")
    opened = AlertStore.open(url)
    try:
        yield opened
    finally:
        opened.close()


def age_metric(metrics: AlertMetrics) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("caresignal_alerts_outbox_oldest_age_seconds "):
            return float(line.split()[1])
    raise AssertionError("caresignal_alerts_outbox_oldest_age_seconds not exported")


def test_the_age_is_that_of_the_longest_waiting_delivery_and_zero_once_none_waits(store: AlertStore) -> None:
    now = [T0]
    metrics = AlertMetrics()
    metrics.track_store(
        store.outbox_depth,
        lambda: store.count_deliveries(DeliveryOutcome.dead),
        store.oldest_pending_created_at,
        clock=lambda: now[0],
    )
    assert age_metric(metrics) == 0.0
    first = new_alert(change("1-100000001", 1, "none", "major"))
    store.record([first], T0)
    store.record([new_alert(change("1-100000002", 1, "none", "major"))], T0 + 60)
    now[0] = T0 + 600
    assert age_metric(metrics) == 600.0
    jobs = store.claim_due(T0 + 600, limit=10, lease_s=30)
    assert len(jobs) == 4

    def deliver(alert_ids: set[str]) -> None:
        for job in jobs:
            if job.alert_id in alert_ids:
                result = AttemptResult(job.delivery_id, DeliveryOutcome.delivered, 204, None, 1.0, None)
                store.finish(result, T0 + 601)

    deliver({first.alert_id})
    assert age_metric(metrics) == 540.0, "the second alert's deliveries are now the oldest"
    deliver({j.alert_id for j in jobs})
    assert age_metric(metrics) == 0.0


def test_no_delivery_waiting_is_no_age_and_a_clock_behind_is_never_negative() -> None:
    assert pending_age(100.0, None) == 0.0
    assert pending_age(100.0, 40.0) == 60.0
    assert pending_age(100.0, 140.0) == 0.0
