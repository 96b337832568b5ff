"""Loading history does not flood authorities: the real alert service, the real broker,
signature-verifying webhook receivers and a real SMTP server. Thirty changes from a
backfill are recorded and not sent; once the backfill settles each recipient is told the
current level once; a live change afterwards is sent as usual."""

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from tests.alert_peers import HOST, OPERATOR_KEY, PLACER_A, PLACER_B, THIRD, Peers, key_for, make_alerts
from tests.service_process import AlertsProcess
from tests.test_alerts_service import Feed, api, eventually, standard_directory

pytestmark = pytest.mark.integration

SETTLE_S = 3.0
TOLD = (HOST, PLACER_A, PLACER_B)
# Thirty changes about the past, wandering below Major, ending at Major.
PATH = ["minor", "moderate", "minor", "none"]
HISTORY = ["none"] + [PATH[i % len(PATH)] for i in range(29)] + ["major"]


@pytest.fixture
def feed(test_kafka_settings: KafkaSettings, topics: Topics) -> Iterator[Feed]:
    f = Feed(test_kafka_settings, topics)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def alerts(tmp_path: Path, test_kafka_settings: KafkaSettings, peers: Peers) -> Iterator[AlertsProcess]:
    process = make_alerts(tmp_path, test_kafka_settings, peers, backfill_settle_s=str(SETTLE_S))
    try:
        yield process
    finally:
        process.stop()


def test_history_is_recorded_and_each_authority_is_told_the_current_level_once(
    alerts: AlertsProcess, peers: Peers, feed: Feed
) -> None:
    standard_directory(feed)
    alerts.start()
    for old, new in itertools.pairwise(HISTORY):
        feed.change(old, new, backfill=True)
    recorded = eventually(
        lambda: len(api(alerts, "/v1/alerts?state=history").json()) == 30 or None,
        what="30 history alerts",
    )
    assert recorded
    # Consumed, and not one sent: the settle time has not passed since the last of them.
    assert all(peers.hooks[a].received() == [] for a in TOLD)
    assert peers.smtp.messages() == []

    for authority in TOLD:
        peers.hooks[authority].wait_for(1, timeout=SETTLE_S + 30)
    peers.smtp.wait_for(3, timeout=30)
    time.sleep(SETTLE_S + 1.0)  # anything more would come now
    for authority in TOLD:
        [notice] = peers.hooks[authority].received()
        assert notice.body["type"] == "caresignal.alert.current-level"
        data = notice.body["data"]
        assert (data["kind"], data["label"]) == ("current-level", "CURRENT RISK LEVEL (history loaded)")
        assert (data["old_level"], data["new_level"]) == ("none", "major")
        assert data["actions"] == [{"action": "Contact the police", "lead": "Safeguarding"}]
        assert data["reasons"][0]["rule_id"] == "serious_abuse_or_neglect"
    assert peers.hooks[THIRD].received() == []
    mails = peers.smtp.messages()
    assert sorted(m.rcpt_tos[0] for m in mails) == sorted(f"safeguarding@{a.lower()}.example" for a in TOLD)
    assert all("CURRENT RISK LEVEL (history loaded)" in m.message["Subject"] for m in mails)
    assert all(m.message["X-CareSignal-Kind"] == "current-level" for m in mails)

    # The record: thirty history alerts, visible to the authorities they concern, and one notice.
    mine = api(alerts, "/v1/alerts?limit=500", key=key_for(PLACER_A)).json()
    assert sorted(a["state"] for a in mine).count("history") == 30
    [current] = api(alerts, "/v1/alerts?kind=current-level").json()
    assert current["new_level"] == "major" and current["state"] == "open"

    # A live change afterwards is sent as usual.
    feed.change("major", "moderate")
    for authority in TOLD:
        peers.hooks[authority].wait_for(2, timeout=30)
        assert peers.hooks[authority].received()[1].body["type"] == "caresignal.alert.de-escalation"
    peers.smtp.wait_for(6, timeout=30)
    time.sleep(SETTLE_S + 1.0)
    assert all(len(peers.hooks[a].received()) == 2 for a in TOLD)
    assert api(alerts, "/v1/alerts?kind=current-level", key=OPERATOR_KEY).json()[0]["state"] == "resolved"
