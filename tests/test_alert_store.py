"""The alert store and outbox on both databases: a SQLite file and a real PostgreSQL server."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from schemas.alerts import AlertKind, Recipient, RecipientRole
from schemas.risk import LevelChange
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.routing import Channel, PlannedDelivery, alert_id_for, delivery_id_for
from services.alerts.store import AlertFilter, AlertNotFound, AlertStore, AttemptResult, NewAlert

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


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


def change(location: str, seq: int, old: str, new: str, scope: str = "location", **extra: object) -> LevelChange:
    return LevelChange.model_validate(
        {
            "change_id": f"{location}:{seq}" if scope == "location" else f"org:1-000111222:{seq}",
            "sequence": seq,
            "scope": scope,
            "location_id": location if scope == "location" else None,
            "provider_id": "1-000111222",
            "old_level": old,
            "new_level": new,
            "direction": "escalation" if new in ("major", "moderate") and old in ("none", "minor") else "de-escalation",
            "score": 1.0,
            "reasons": [],
            "actions": [],
            "meaning": "",
            "policy_version": "p1",
            "decided_at": datetime.fromtimestamp(T0, UTC),
            **extra,
        }
    )


def new_alert(c: LevelChange, authorities: tuple[str, ...] = ("E10000030", "E06000036")) -> NewAlert:
    alert_id = alert_id_for(c.change_id)
    kind = AlertKind.escalation if c.direction == "escalation" else AlertKind.de_escalation
    recipients = tuple(
        Recipient(authority=a, roles=[RecipientRole.host if i == 0 else RecipientRole.placing], locations=[c.key])
        for i, a in enumerate(authorities)
    )
    deliveries = [
        PlannedDelivery(
            delivery_id_for(alert_id, a, "webhook", f"hook-{a.lower()}"),
            a,
            Channel.webhook,
            f"hook-{a.lower()}",
            DeliveryOutcome.pending,
        )
        for a in authorities
    ]
    return NewAlert(alert_id, kind, c, "Rose House", recipients, deliveries, published_at=T0)


def test_an_alert_and_its_deliveries_are_stored_once_however_often_the_change_arrives(store: AlertStore) -> None:
    first = new_alert(change("1-100000001", 1, "none", "major"))
    assert store.record([first], T0).created == [first.alert_id]
    again = store.record([first], T0 + 5)
    assert again.created == [] and again.duplicates == [first.alert_id]
    stored = store.get_alert(first.alert_id)
    assert len(stored["deliveries"]) == 2 and store.outbox_depth() == 2
    assert [a["action"] for a in stored["audit"]] == ["alert.escalation"]


def test_a_failing_batch_stores_nothing(store: AlertStore) -> None:
    good = new_alert(change("1-100000001", 1, "none", "major"))
    broken = new_alert(change("1-100000002", 1, "none", "major"))
    # Two deliveries with one id: the second insert fails, the whole transaction with it.
    broken = NewAlert(**{**broken.__dict__, "deliveries": broken.deliveries[:1] * 2})
    with pytest.raises(IntegrityError):
        store.record([good, broken], T0)
    with pytest.raises(AlertNotFound):
        store.get_alert(good.alert_id)
    assert store.outbox_depth() == 0


def test_claims_lease_and_outcomes(store: AlertStore) -> None:
    alert = new_alert(change("1-100000001", 1, "none", "major"))
    store.record([alert], T0)
    jobs = store.claim_due(T0 + 1, limit=10, lease_s=30)
    assert {j.authority for j in jobs} == {"E10000030", "E06000036"}
    assert jobs[0].content.change.new_level == "major" and jobs[0].recipient.locations == ["1-100000001"]
    assert store.claim_due(T0 + 2, limit=10, lease_s=30) == [], "a claimed delivery was handed out twice"
    host, placer = sorted(jobs, key=lambda j: j.authority, reverse=True)
    store.finish(AttemptResult(host.delivery_id, DeliveryOutcome.delivered, 204, None, 12.0, None), T0 + 3)
    store.finish(AttemptResult(placer.delivery_id, DeliveryOutcome.retry, 503, "HTTP 503", 8.0, T0 + 100), T0 + 3)
    assert store.claim_due(T0 + 50, limit=10, lease_s=30) == []  # retry not due yet
    retried = store.claim_due(T0 + 100, limit=10, lease_s=30)
    assert [j.delivery_id for j in retried] == [placer.delivery_id] and retried[0].attempts == 1
    # The sender died: after the lease the delivery is due again, under the same id.
    again = store.claim_due(T0 + 131, limit=10, lease_s=30)
    assert [j.delivery_id for j in again] == [placer.delivery_id]
    store.finish(AttemptResult(placer.delivery_id, DeliveryOutcome.dead, 500, "HTTP 500", 8.0, None), T0 + 140)
    detail = store.get_alert(alert.alert_id)
    states = {d["authority"]: d["state"] for d in detail["deliveries"]}
    assert states == {"E10000030": "delivered", "E06000036": "dead"}
    log = next(d for d in detail["deliveries"] if d["authority"] == "E06000036")["attempt_log"]
    assert [e["outcome"] for e in log] == ["retry", "dead"]
    assert store.count_deliveries(DeliveryOutcome.dead) == 1 and store.outbox_depth() == 0
    # A late answer never undoes a decision.
    store.finish(AttemptResult(placer.delivery_id, DeliveryOutcome.delivered, 204, None, 1.0, None), T0 + 150)
    assert store.count_deliveries(DeliveryOutcome.dead) == 1


def test_gone_disables_the_endpoint_and_its_other_pending_deliveries(store: AlertStore) -> None:
    a = new_alert(change("1-100000001", 1, "none", "major"))
    b = new_alert(change("1-100000002", 1, "none", "major"))
    store.record([a, b], T0)
    jobs = store.claim_due(T0, limit=1, lease_s=30)
    target = jobs[0].target
    store.finish(
        AttemptResult(jobs[0].delivery_id, DeliveryOutcome.endpoint_gone, 410, "HTTP 410", 3.0, None),
        T0 + 1,
        "http://x/hook",
    )
    assert store.disabled_endpoints() == {target: "http://x/hook"}
    left = [j.target for j in store.claim_due(T0 + 2, limit=10, lease_s=30)]
    assert target not in left and len(left) == 2
    assert store.count_deliveries(DeliveryOutcome.endpoint_gone) == 2
    assert store.enable_endpoint(target, "operator:ops", T0 + 3) and store.disabled_endpoints() == {}


def test_mutes_expire_and_can_be_revoked(store: AlertStore) -> None:
    mute = store.add_mute("E10000030", "1-100000001", T0 + 100, "E10000030:lead", T0)
    # Only that authority, only that location, only until the expiry.
    assert store.live_mutes(T0 + 50) == {("E10000030", "1-100000001")}
    assert store.live_mutes(T0 + 100) == set()
    store.revoke_mute(mute["id"], "E10000030", "E10000030:lead", T0 + 60)
    assert store.live_mutes(T0 + 61) == set()
    assert store.list_mutes("E10000030", T0 + 61) == []
    assert len(store.list_mutes("E10000030", T0 + 61, include_expired=True)) == 1


def test_later_changes_resolve_earlier_alerts_and_reminders_stop_on_acknowledgement(store: AlertStore) -> None:
    loc = "1-100000001"
    major = new_alert(change(loc, 1, "none", "major"))
    store.record([major], T0)
    assert [r["id"] for r in store.due_reminders(T0 + 3600, 3600)] == [major.alert_id]
    assert store.due_reminders(T0 + 3599, 3600) == []
    reminder = NewAlert(
        alert_id=f"{major.alert_id}-r1",
        kind=AlertKind.reminder,
        change=major.change,
        location_name=None,
        recipients=major.recipients,
        deliveries=[],
        published_at=T0 + 3600,
        parent_id=major.alert_id,
        reminder_number=1,
    )
    store.record([reminder], T0 + 3600)
    assert store.due_reminders(T0 + 7000, 3600) == []  # the last reminder counts, not the alert
    assert [r["reminders_sent"] for r in store.due_reminders(T0 + 7200, 3600)] == [1]
    store.acknowledge(reminder.alert_id, "E06000036:lead", T0 + 7300)
    assert store.get_alert(major.alert_id)["acknowledged_by"] == "E06000036:lead"
    assert store.due_reminders(T0 + 99999, 3600) == []
    fall = new_alert(change(loc, 2, "major", "none"))
    store.record([fall], T0 + 8000)
    assert store.get_alert(major.alert_id)["state"] == "resolved"


def test_listing_filters_and_need_to_know(store: AlertStore) -> None:
    store.record([new_alert(change("1-100000001", 1, "none", "major"))], T0)
    store.record([new_alert(change("1-100000002", 1, "none", "moderate"), ("E08000025",))], T0 + 1)
    org = change("", 1, "none", "major", scope="organisation", locations=["1-100000001", "1-100000003"])
    org_alert = new_alert(org, ("E10000030",))
    org_alert = NewAlert(
        **{
            **org_alert.__dict__,
            "recipients": (Recipient(authority="E10000030", roles=[RecipientRole.host], locations=["1-100000003"]),),
        }
    )
    store.record([org_alert], T0 + 2)
    everything = store.list_alerts(AlertFilter(), None)
    assert len(everything) == 3 and everything[0]["id"] == org_alert.alert_id  # newest first
    assert len(store.list_alerts(AlertFilter(), "E08000025")) == 1
    assert store.list_alerts(AlertFilter(), "E09000033") == []
    assert len(store.list_alerts(AlertFilter(authority="E10000030"), None)) == 2
    assert [a["new_level"] for a in store.list_alerts(AlertFilter(level="moderate"), None)] == ["moderate"]
    by_location = store.list_alerts(AlertFilter(location_id="1-100000003"), None)
    assert [a["id"] for a in by_location] == [org_alert.alert_id]
    assert store.list_alerts(AlertFilter(location_id="1-10000000"), None) == []  # whole ids only
    assert len(store.list_alerts(AlertFilter(limit=1), None)) == 1
    assert store.received(org_alert.alert_id, "E10000030") and not store.received(org_alert.alert_id, "E08000025")
