"""The alert service as a real process, with the real broker, real webhook receivers that
verify signatures with the `standardwebhooks` package, a real SMTP server, and SQLite or
a real PostgreSQL server."""

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from tests.alert_peers import (
    HOST,
    LOCATION,
    OPERATOR_KEY,
    PLACER_A,
    PLACER_B,
    PROVIDER,
    THIRD,
    Peers,
    contacts_yaml,
    key_for,
    make_alerts,
)
from tests.conftest import consume_all
from tests.service_process import AlertsProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def alerts(tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers) -> Iterator[AlertsProcess]:
    process = make_alerts(tmp_path, test_kafka_settings, peers)
    try:
        yield process
    finally:
        process.stop()


class Feed:
    """Writes directory records and level changes straight to the topics."""

    def __init__(self, kafka: KafkaSettings, topics: Topics) -> None:
        self.topics = topics
        self.producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        self.sequence: dict[str, int] = {}

    def location(self, location_id: str = LOCATION, host: str = HOST, provider: str = PROVIDER) -> None:
        record = {
            "location_id": location_id,
            "provider_id": provider,
            "service_type": "care_home",
            "capacity": 40,
            "host_authority": host,
            "name": "Rose & Crown House",
        }
        self.producer.send(self.topics.locations, key=location_id.encode(), value=json.dumps(record).encode())
        self.producer.flush()

    def placement(self, authority: str, location_id: str = LOCATION, status: str = "active") -> None:
        record = {"authority": authority, "location_id": location_id, "people_placed": 2, "status": status}
        key = f"{location_id}/{authority}".encode()
        self.producer.send(self.topics.placements, key=key, value=json.dumps(record).encode())
        self.producer.flush()

    def change(self, old: str, new: str, location_id: str = LOCATION, **extra: Any) -> str:
        seq = self.sequence[location_id] = self.sequence.get(location_id, 0) + 1
        now = datetime.now(UTC).replace(microsecond=0)
        change = {
            "change_id": f"{location_id}:{seq}",
            "sequence": seq,
            "location_id": None if extra.get("scope") == "organisation" else location_id,
            "provider_id": PROVIDER,
            "old_level": old,
            "new_level": new,
            "direction": "escalation"
            if ["none", "minor", "moderate", "major"].index(new) > ["none", "minor", "moderate", "major"].index(old)
            else "de-escalation",
            "score": 10.0,
            "reasons": [
                {
                    "rule_id": "serious_abuse_or_neglect",
                    "family": "trigger",
                    "level": "major",
                    "description": "A concern related to serious abuse or neglect",
                    "evidence_count": 2,
                    "evidence": [
                        {
                            "event_id": f"ev-{seq}-{i}",
                            "source": "urn:caresignal:source:test",
                            "type": "uk.caresignal.safeguarding_concern.v1",
                            "time": (now - timedelta(days=i)).isoformat(),
                        }
                        for i in range(2)
                    ],
                }
            ]
            if new != "none"
            else [],
            "actions": [{"action": "Contact the police", "lead": "Safeguarding"}] if new == "major" else [],
            "meaning": "People are not protected from unsafe care" if new == "major" else "",
            "policy_version": "test-1",
            "decided_at": now.isoformat(),
            **extra,
        }
        self.producer.send(self.topics.risk_changes, key=location_id.encode(), value=json.dumps(change).encode())
        self.producer.flush()
        return str(change["change_id"])

    def close(self) -> None:
        self.producer.close()


@pytest.fixture
def feed(test_kafka_settings: KafkaSettings, topics: Topics) -> Iterator[Feed]:
    f = Feed(test_kafka_settings, topics)
    try:
        yield f
    finally:
        f.close()


def api(alerts: AlertsProcess, path: str, key: str = OPERATOR_KEY, method: str = "GET", **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{alerts.url}{path}", headers=headers, timeout=10, **kw)


def eventually(check: Callable[[], Any], timeout_s: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def standard_directory(feed: Feed) -> None:
    feed.location()
    feed.placement(PLACER_A)
    feed.placement(PLACER_B)
    feed.placement(THIRD, status="ended")  # placed once, not any more: no need to know


def metric(alerts: AlertsProcess, line_start: str) -> float:
    for line in httpx.get(f"{alerts.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line_start}")


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_major_reaches_host_and_placing_authorities_only_then_the_cleared_notice_too(
    database: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    test_kafka_settings: KafkaSettings,
    peers: Peers,
    feed: Feed,
) -> None:
    url = request.getfixturevalue("postgres_database_url") if database == "postgresql" else ""
    alerts = make_alerts(tmp_path, test_kafka_settings, peers, database_url=url)
    try:
        standard_directory(feed)
        alerts.start()
        feed.change("none", "major")
        told = (HOST, PLACER_A, PLACER_B)
        for authority in told:
            peers.hooks[authority].wait_for(1, timeout=30)
        peers.smtp.wait_for(3, timeout=30)
        time.sleep(1.0)
        assert peers.hooks[THIRD].received() == []
        body = peers.hooks[PLACER_A].received()[0].body
        assert body["type"] == "caresignal.alert.escalation"
        data = body["data"]
        assert (data["location_id"], data["old_level"], data["new_level"]) == (LOCATION, "none", "major")
        assert data["recipient"] == {"authority": PLACER_A, "roles": ["placing"], "locations": [LOCATION]}
        assert data["reasons"][0]["evidence"][0]["count"] == 2
        assert data["actions"] == [{"action": "Contact the police", "lead": "Safeguarding"}]
        assert peers.hooks[HOST].received()[0].body["data"]["recipient"]["roles"] == ["host"]
        mails = peers.smtp.messages()
        assert sorted(m.rcpt_tos[0] for m in mails) == sorted(f"safeguarding@{a.lower()}.example" for a in told)

        # The API: the operator sees all, each authority only what it received.
        listed = api(alerts, "/v1/alerts").json()
        assert len(listed) == 1 and listed[0]["new_level"] == "major"
        alert_id = listed[0]["alert_id"]
        assert api(alerts, "/v1/alerts", key=key_for(THIRD)).json() == []
        assert api(alerts, f"/v1/alerts/{alert_id}", key=key_for(THIRD)).status_code == 404
        mine = api(alerts, f"/v1/alerts/{alert_id}", key=key_for(PLACER_A)).json()
        assert {d["authority"] for d in mine["deliveries"]} == {PLACER_A}
        assert [r["authority"] for r in mine["recipients"]] == [PLACER_A]
        full = api(alerts, f"/v1/alerts/{alert_id}").json()
        assert {(d["authority"], d["channel"], d["state"]) for d in full["deliveries"]} == {
            (a, c, "delivered") for a in told for c in ("webhook", "email")
        }
        assert all(d["attempt_log"][0]["outcome"] == "delivered" for d in full["deliveries"])

        # Acknowledged and muted by the host: the fall is still told to everyone told of the rise.
        ack = api(alerts, f"/v1/alerts/{alert_id}/acknowledge", key=key_for(HOST), method="POST")
        assert ack.status_code == 200 and ack.json()["acknowledged_by"] == f"{HOST}:{HOST.lower()}"
        mute = api(alerts, "/v1/mutes", key=key_for(HOST), method="POST", json={"location_id": LOCATION, "hours": 4})
        assert mute.status_code == 201
        feed.change("major", "none")
        for authority in told:
            peers.hooks[authority].wait_for(2, timeout=30)
        cleared = peers.hooks[HOST].received()[1].body
        assert cleared["type"] == "caresignal.alert.de-escalation"
        assert cleared["data"]["label"] == "RISK LOWERED"
        peers.smtp.wait_for(6, timeout=30)
        assert any("LOWERED" in m.message["Subject"] for m in peers.smtp.messages())
        assert peers.hooks[THIRD].received() == []
        states = {a["alert_id"]: a["state"] for a in api(alerts, "/v1/alerts").json()}
        assert states[alert_id] == "resolved"
        assert metric(alerts, 'caresignal_alerts_total{kind="escalation",level="major"}') == 1
        assert metric(alerts, 'caresignal_alerts_notifications_total{channel="webhook",outcome="delivered"}') == 6
        assert metric(alerts, "caresignal_alerts_outbox_depth") == 0
    finally:
        alerts.stop()


def test_a_mute_records_the_alert_but_does_not_send_it(alerts: AlertsProcess, peers: Peers, feed: Feed) -> None:
    standard_directory(feed)
    alerts.start()
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    mute = api(
        alerts, "/v1/mutes", key=key_for(PLACER_B), method="POST", json={"location_id": LOCATION, "until": until}
    )
    assert mute.status_code == 201, mute.text
    feed.change("none", "moderate")
    peers.hooks[HOST].wait_for(1, timeout=30)
    peers.hooks[PLACER_A].wait_for(1, timeout=30)
    time.sleep(1.0)
    assert peers.hooks[PLACER_B].received() == []
    alert = api(alerts, "/v1/alerts", key=key_for(PLACER_B)).json()[0]
    detail = api(alerts, f"/v1/alerts/{alert['alert_id']}", key=key_for(PLACER_B)).json()
    assert {d["state"] for d in detail["deliveries"]} == {"muted"}
    assert api(alerts, "/v1/mutes", key=key_for(PLACER_B)).json()[0]["created_by"] == f"{PLACER_B}:{PLACER_B.lower()}"
    # Another authority cannot mute on someone else's behalf; a mute must expire.
    other = {"location_id": LOCATION, "hours": 1, "authority": HOST}
    assert api(alerts, "/v1/mutes", key=key_for(PLACER_B), method="POST", json=other).status_code == 403
    forever = {"location_id": LOCATION}
    assert api(alerts, "/v1/mutes", key=key_for(PLACER_B), method="POST", json=forever).status_code == 422


def test_api_keys_401_403(alerts: AlertsProcess, feed: Feed) -> None:
    standard_directory(feed)
    alerts.start()
    assert api(alerts, "/v1/alerts", key="").status_code == 401
    assert api(alerts, "/v1/alerts", key="cs_wrong").status_code == 401
    assert api(alerts, f"/v1/alerts?authority={HOST}", key=key_for(PLACER_A)).status_code == 403
    assert api(alerts, "/v1/endpoints", key=key_for(HOST)).status_code == 403
    endpoints = api(alerts, "/v1/endpoints").json()
    assert len(endpoints) == 4 and all("secret" not in json.dumps(e) for e in endpoints)
    assert api(alerts, "/v1/alerts?level=severe").status_code == 422
    assert httpx.get(f"{alerts.url}/healthz").status_code == 200


def test_receiver_down_then_back_gets_everything_once(alerts: AlertsProcess, peers: Peers, feed: Feed) -> None:
    standard_directory(feed)
    alerts.start()
    peers.hooks[PLACER_A].down()
    feed.change("none", "major")
    feed.change("major", "moderate")
    feed.change("moderate", "major")
    peers.hooks[HOST].wait_for(3, timeout=30)

    # The others are not held up by the dead receiver; it is being retried.
    def placer_a_webhooks() -> list[dict[str, Any]]:
        return [
            d
            for a in api(alerts, "/v1/alerts").json()
            for d in api(alerts, f"/v1/alerts/{a['alert_id']}").json()["deliveries"]
            if d["authority"] == PLACER_A and d["channel"] == "webhook"
        ]

    retried = placer_a_webhooks()
    eventually(lambda: all(d["attempts"] >= 1 for d in placer_a_webhooks()), what="failed attempts recorded")
    assert len(retried) == 3 and all(d["state"] == "pending" for d in retried)
    time.sleep(2)
    peers.hooks[PLACER_A].up()
    peers.hooks[PLACER_A].wait_for(3, timeout=30)
    time.sleep(2)
    ids = peers.hooks[PLACER_A].ids()
    assert len(ids) == len(set(ids)) == 3
    kinds = [r.body["type"] for r in peers.hooks[PLACER_A].received()]
    assert sorted(kinds) == sorted(
        ["caresignal.alert.escalation", "caresignal.alert.de-escalation", "caresignal.alert.escalation"]
    )


def test_retry_after_is_honoured_and_410_disables_the_endpoint(alerts: AlertsProcess, peers: Peers, feed: Feed) -> None:
    standard_directory(feed)
    alerts.start()
    peers.hooks[PLACER_A].set_response(503, {"Retry-After": "3"}, times=1)
    peers.hooks[PLACER_B].set_response(410)
    started = time.monotonic()
    feed.change("none", "major")
    peers.hooks[PLACER_A].wait_for(1, timeout=30)
    assert time.monotonic() - started >= 3
    alert_id = api(alerts, "/v1/alerts").json()[0]["alert_id"]
    deliveries = {(d["authority"], d["channel"]): d for d in api(alerts, f"/v1/alerts/{alert_id}").json()["deliveries"]}
    log_a = deliveries[(PLACER_A, "webhook")]["attempt_log"]
    assert [(e["outcome"], e["status"]) for e in log_a] == [("retry", 503), ("delivered", 204)]
    assert deliveries[(PLACER_B, "webhook")]["state"] == "endpoint-gone"
    endpoints = {e["endpoint_id"]: e for e in api(alerts, "/v1/endpoints").json()}
    assert endpoints[f"hook-{PLACER_B.lower()}"]["disabled"] is True
    # The next alert does not even try the disabled endpoint; email still goes.
    peers.hooks[PLACER_B].set_response(204)
    feed.change("major", "moderate")
    peers.hooks[HOST].wait_for(2, timeout=30)
    peers.smtp.wait_for(6, timeout=30)
    newest = api(alerts, "/v1/alerts").json()[0]["alert_id"]
    states = {
        (d["authority"], d["channel"]): d["state"] for d in api(alerts, f"/v1/alerts/{newest}").json()["deliveries"]
    }
    assert states[(PLACER_B, "webhook")] == "endpoint-gone" and states[(PLACER_B, "email")] == "delivered"
    # An operator re-enables it.
    assert api(alerts, f"/v1/endpoints/hook-{PLACER_B.lower()}/enable", method="POST").status_code == 200
    feed.change("moderate", "major")
    peers.hooks[PLACER_B].wait_for(1, timeout=30)


def test_gives_up_after_the_window_into_a_visible_dead_letter_state(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers, feed: Feed
) -> None:
    alerts = make_alerts(tmp_path, test_kafka_settings, peers, retry_window_h=str(3 / 3600))
    try:
        standard_directory(feed)
        alerts.start()
        peers.hooks[PLACER_A].set_response(500)
        feed.change("none", "major")
        dead = eventually(
            lambda: (
                api(alerts, "/v1/alerts").json()
                and [
                    d
                    for d in api(alerts, f"/v1/alerts/{api(alerts, '/v1/alerts').json()[0]['alert_id']}").json()[
                        "deliveries"
                    ]
                    if d["state"] == "dead"
                ]
            ),
            timeout_s=30,
            what="a dead delivery",
        )
        assert [(d["authority"], d["channel"]) for d in dead] == [(PLACER_A, "webhook")]
        assert len(dead[0]["attempt_log"]) >= 2 and dead[0]["attempt_log"][-1]["outcome"] == "dead"
        assert metric(alerts, "caresignal_alerts_dead_letters") == 1
        assert metric(alerts, 'caresignal_alerts_notifications_total{channel="webhook",outcome="dead"}') == 1
        assert peers.hooks[HOST].received() != []  # the others were delivered meanwhile
    finally:
        alerts.stop()


def test_reminders_for_unacknowledged_major_until_acknowledged(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers, feed: Feed
) -> None:
    alerts = make_alerts(
        tmp_path, test_kafka_settings, peers, reminder_interval_h=str(2 / 3600), reminder_check_s="0.3"
    )
    try:
        standard_directory(feed)
        alerts.start()
        feed.change("none", "major")
        peers.hooks[HOST].wait_for(3, timeout=30)  # the alert and two reminders
        types = [r.body["type"] for r in peers.hooks[HOST].received()]
        assert types[:3] == ["caresignal.alert.escalation", "caresignal.alert.reminder", "caresignal.alert.reminder"]
        numbers = [r.body["data"]["reminder_number"] for r in peers.hooks[HOST].received()[1:3]]
        assert numbers == [1, 2]
        reminder_id = peers.hooks[HOST].received()[1].body["data"]["alert_id"]
        assert (
            api(alerts, f"/v1/alerts/{reminder_id}/acknowledge", key=key_for(PLACER_A), method="POST").status_code
            == 200
        )
        time.sleep(1.0)
        count = len(peers.hooks[HOST].received())
        time.sleep(4.0)
        assert len(peers.hooks[HOST].received()) == count, "a reminder was sent after the acknowledgement"
        original = api(alerts, "/v1/alerts?kind=escalation").json()[0]
        assert original["state"] == "acknowledged"
    finally:
        alerts.stop()


def test_directory_and_contact_changes_apply_without_restart_and_bad_changes_are_dead_lettered(
    alerts: AlertsProcess, peers: Peers, feed: Feed, test_kafka_settings: KafkaSettings, topics: Topics
) -> None:
    feed.location()
    alerts.start()
    feed.placement(THIRD)  # placed after the service started
    time.sleep(1.0)
    feed.change("none", "minor")
    peers.hooks[THIRD].wait_for(1, timeout=30)
    feed.placement(THIRD, status="ended")
    # Only Major for the host from now on: the contact file is edited in place.
    alerts.contacts_file.write_text(contacts_yaml(peers, {HOST: "major"}))
    time.sleep(1.5)
    feed.change("minor", "moderate")
    peers.smtp.wait_for(3, timeout=30)  # host email (min minor) for both changes, third's for the first
    time.sleep(1.0)
    assert len(peers.hooks[THIRD].received()) == 1
    assert len(peers.hooks[HOST].received()) == 1
    # A broken edit is refused; the last good contacts stay in force.
    alerts.contacts_file.write_text("authorities: {E1: nonsense}")
    time.sleep(1.0)
    assert httpx.get(f"{alerts.url}/readyz").status_code == 200
    feed.producer.send(topics.risk_changes, key=LOCATION.encode(), value=b'{"change_id": "x"}')
    feed.producer.flush()
    dead = consume_all(test_kafka_settings.bootstrap_servers, topics.dead_letter, expect=1, timeout_s=30)
    assert [dict(r.headers)["caresignal.error.reason"] for r in dead] == [b"invalid_level_change"]
    feed.change("moderate", "major")
    peers.hooks[HOST].wait_for(2, timeout=30)


def test_kill_9_mid_delivery_loses_nothing_and_sends_each_delivery_once(
    tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers, feed: Feed
) -> None:
    locations = [f"1-2{n:08d}" for n in range(60)]
    for loc in locations:
        feed.location(loc)
        feed.placement(PLACER_A, loc)
    # A killed instance's partitions come back after 10 s, not the default 45.
    alerts = make_alerts(tmp_path, test_kafka_settings, peers, max_in_flight="4", session_timeout_s="10")
    try:
        alerts.start()
        peers.hooks[HOST].set_delay(0.05)
        for loc in locations:
            feed.change("none", "major", location_id=loc)
        peers.hooks[HOST].wait_for(10, timeout=60)
        alerts.kill()
        assert len(peers.hooks[HOST].unique_ids()) < len(locations), "delivery finished before the kill"
        alerts.start()
        for authority in (HOST, PLACER_A):
            peers.hooks[authority].wait_for(lambda got: len({r.webhook_id for r in got}) >= len(locations), timeout=90)
        time.sleep(2)
        for authority in (HOST, PLACER_A):
            ids = peers.hooks[authority].ids()
            alert_ids = [r.body["data"]["alert_id"] for r in peers.hooks[authority].received()]
            assert len(set(alert_ids)) == len(locations), "an alert was lost"
            assert len(set(ids)) == len(locations), "one alert went out under two delivery ids"
            # Only a request in flight at the kill may arrive twice, under the same id.
            assert len(ids) - len(set(ids)) <= 4
        listed = api(alerts, "/v1/alerts?limit=500").json()
        assert len(listed) == len(locations)
    finally:
        alerts.stop()


def test_an_organisation_change_reaches_the_authorities_of_all_its_locations(
    alerts: AlertsProcess, peers: Peers, feed: Feed
) -> None:
    feed.location("1-100000001", host=HOST)
    feed.location("1-100000002", host=PLACER_B)  # same provider, another area
    feed.placement(PLACER_A, "1-100000002")
    feed.location("1-100000003", host=THIRD, provider="1-000999999")  # another provider
    alerts.start()
    org = {
        "scope": "organisation",
        "change_id": f"org:{PROVIDER}:1",
        "locations": ["1-100000001", "1-100000002"],
    }
    feed.change("none", "major", location_id=PROVIDER, **org)
    for authority in (HOST, PLACER_A, PLACER_B):
        peers.hooks[authority].wait_for(1, timeout=30)
    time.sleep(1.0)
    assert peers.hooks[THIRD].received() == []
    data = peers.hooks[PLACER_A].received()[0].body["data"]
    assert data["scope"] == "organisation" and data["provider_id"] == PROVIDER
    assert data["recipient"] == {"authority": PLACER_A, "roles": ["placing"], "locations": ["1-100000002"]}
    assert api(alerts, "/v1/alerts?location=1-100000002", key=key_for(PLACER_A)).json()[0]["scope"] == "organisation"
    assert metric(alerts, 'caresignal_alerts_delivery_latency_seconds_count{channel="webhook"}') == 3
