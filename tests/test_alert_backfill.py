"""After history is loaded: the decision (pure), then the store and the shell on a real
SQLite file and a real PostgreSQL database: backfill changes are recorded as `history` and sent to nobody, and the
recipients are told the current level once the backfill settles, once, restarts included."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.alerts import AlertKind, Recipient, RecipientRole
from schemas.directory import Location, Placement, PlacementStatus, ServiceType
from schemas.risk import Action, Level, LevelChange, LevelName, RuleFiring
from schemas.topics import Topics
from services.alerts.backfill import current_level_change, current_level_notice, settled
from services.alerts.consumer import ChangeConsumer, ConsumerConfig
from services.alerts.contacts import ContactBook, ContactFileWatcher, Email, Webhook
from services.alerts.current_level import CurrentLevelNotices
from services.alerts.metrics import AlertMetrics
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.routing import (
    Channel,
    Directory,
    alert_id_for,
    current_level_id_for,
    plan_deliveries,
)
from services.alerts.store import AlertFilter, AlertStore, AttemptResult

HOST = "E10000030"
PLACER = "E06000036"
ENDED = "E08000025"
LOCATION = "1-100000001"
PROVIDER = "1-000111222"
SECRET = "whsec_" + "A" * 44
LEVELS = ["none", "minor", "moderate", "major"]
T0 = 1_800_000_000.0

RULE = RuleFiring(
    rule_id="serious_abuse_or_neglect",
    family="trigger",
    level=LevelName.major,
    description="A concern related to serious abuse or neglect",
    evidence_count=1,
)
POLICE = Action(action="Contact the police", lead="Safeguarding")


def change(seq: int, old: str, new: str, backfill: bool = True) -> LevelChange:
    return LevelChange(
        change_id=f"{LOCATION}:{seq}",
        sequence=seq,
        location_id=LOCATION,
        provider_id=PROVIDER,
        old_level=LevelName(old),
        new_level=LevelName(new),
        direction="escalation" if LEVELS.index(new) > LEVELS.index(old) else "de-escalation",
        score=float(seq),
        reasons=[RULE] if new != "none" else [],
        actions=[POLICE] if new == "major" else [],
        meaning="People are not protected" if new == "major" else "",
        policy_version="p1",
        decided_at=datetime(2001, 1, 1, tzinfo=UTC),
        backfill=backfill,
    )


def history(count: int, end: str = "major") -> list[LevelChange]:
    """`count` backfill changes from none, wandering below Major, ending at `end` (not the
    level before it: none, minor or moderate)."""
    path = ["minor", "moderate", "minor", "none"]
    levels = ["none"] + [path[i % len(path)] for i in range(count - 1)] + [end]
    return [change(seq, levels[seq - 1], levels[seq]) for seq in range(1, count + 1)]


def directory() -> Directory:
    d = Directory()
    d.put_location(
        Location(
            location_id=LOCATION,
            provider_id=PROVIDER,
            service_type=ServiceType.care_home,
            capacity=40,
            host_authority=HOST,
            name="Rose House",
        )
    )
    d.put_placement(Placement(authority=PLACER, location_id=LOCATION, people_placed=2, status=PlacementStatus.active))
    d.put_placement(Placement(authority=ENDED, location_id=LOCATION, people_placed=1, status=PlacementStatus.ended))
    return d


def book(min_level: Level = Level.minor) -> ContactBook:
    return ContactBook(
        webhooks={
            a: (Webhook(f"hook-{a.lower()}", a, f"http://127.0.0.1:1/{a}", SECRET, min_level),)
            for a in (HOST, PLACER, ENDED)
        },
        emails={a: (Email(a, f"duty@{a.lower()}.example", Level.minor),) for a in (HOST, PLACER, ENDED)},
    )


# --- the decision -----------------------------------------------------------------------


def test_settled_only_after_the_settle_time_without_a_newer_change() -> None:
    assert not settled(arrived_at=T0, now=T0 + 59.9, settle_s=60)
    assert settled(arrived_at=T0, now=T0 + 60, settle_s=60)


@pytest.mark.parametrize("told", list(Level))
def test_the_notice_carries_the_latest_level_reasons_and_actions_from_the_level_last_told(told: Level) -> None:
    latest = change(30, "moderate", "major")
    notice = current_level_change(latest, told)
    if told is Level.major:
        assert notice is None, "they already know"
        return
    assert notice is not None
    assert (notice.old_level, notice.new_level) == (LevelName(told.name), LevelName.major)
    assert notice.direction == "escalation"
    assert (notice.reasons, notice.actions, notice.meaning) == (latest.reasons, latest.actions, latest.meaning)
    assert notice.change_id == latest.change_id


def test_a_history_ending_lower_than_what_was_told_is_a_fall() -> None:
    notice = current_level_change(change(12, "minor", "none"), Level.major)
    assert notice is not None and notice.direction == "de-escalation"
    assert current_level_change(change(12, "minor", "none"), Level.none) is None


def test_the_notice_goes_to_the_recipients_as_of_now_with_a_deterministic_id() -> None:
    d = directory()
    latest = change(30, "moderate", "major")
    notice = current_level_notice(latest, Level.none, d, book(), set())
    assert notice is not None
    assert notice.alert_id == current_level_id_for(latest.change_id) != alert_id_for(latest.change_id)
    assert notice == current_level_notice(latest, Level.none, d, book(), set())
    assert [r.authority for r in notice.recipients] == [PLACER, HOST]
    assert notice.recipients[1] == Recipient(authority=HOST, roles=[RecipientRole.host], locations=[LOCATION])
    assert {(p.authority, p.channel, p.state) for p in notice.deliveries} == {
        (a, c, DeliveryOutcome.pending) for a in (HOST, PLACER) for c in (Channel.webhook, Channel.email)
    }
    # Placed there since: it is told too.
    d.put_placement(Placement(authority=ENDED, location_id=LOCATION, people_placed=1, status=PlacementStatus.active))
    later = current_level_notice(latest, Level.none, d, book(), set())
    assert later is not None and ENDED in {r.authority for r in later.recipients}


def test_a_mute_holds_back_news_of_a_rise_not_of_a_fall() -> None:
    mutes = {(PLACER, LOCATION)}
    rise = current_level_notice(change(30, "moderate", "major"), Level.none, directory(), book(), mutes)
    fall = current_level_notice(change(30, "minor", "none"), Level.major, directory(), book(), mutes)
    assert rise is not None and fall is not None
    assert {p.state for p in rise.deliveries if p.authority == PLACER} == {DeliveryOutcome.muted}
    assert {p.state for p in fall.deliveries if p.authority == PLACER} == {DeliveryOutcome.pending}


def test_minimum_levels_judge_the_higher_of_told_and_now() -> None:
    def webhooks(old: Level, new: Level) -> int:
        plans = plan_deliveries(
            "al_x",
            AlertKind.current_level,
            old,
            new,
            [Recipient(authority=HOST, roles=[RecipientRole.host], locations=[LOCATION])],
            book(Level.major),
            {},
        )
        return sum(p.channel is Channel.webhook for p in plans)

    assert webhooks(Level.none, Level.moderate) == 0
    assert webhooks(Level.none, Level.major) == 1
    assert webhooks(Level.major, Level.minor) == 1  # told of the Major, so told it is over


# --- the store and the shell on a real SQLite file ----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database_url")
    else:
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    opened = AlertStore.open(url)
    try:
        yield opened
    finally:
        opened.close()


def consumer_for(store: AlertStore, tmp_path: Path, clock: Clock) -> ChangeConsumer:
    contacts = ContactFileWatcher(tmp_path / "none.yaml")
    contacts.book = book()
    metrics = AlertMetrics()
    config = ConsumerConfig("127.0.0.1:1", Topics.with_prefix("unused"), "g", 1.0)
    notices = CurrentLevelNotices(store, contacts, metrics, settle_s=60, clock=clock)
    consumer = ChangeConsumer(
        config,
        store,
        contacts,
        directory(),
        metrics,
        on_new_deliveries=lambda: None,
        clock=clock,
        current_level=notices,
    )
    return consumer


def store_changes(consumer: ChangeConsumer, changes: list[LevelChange]) -> None:
    alerts = [consumer.build_alert(c, consumer.clock(), set(), frozenset()) for c in changes]
    consumer.store.record(alerts, consumer.clock())


def deliver_all(store: AlertStore, now: float) -> None:
    for job in store.claim_due(now, 100, 60):
        store.finish(AttemptResult(job.delivery_id, DeliveryOutcome.delivered, 204, None, 1.0, None), now)


def test_history_is_recorded_sent_to_nobody_then_the_current_level_is_told_once(
    store: AlertStore, tmp_path: Path
) -> None:
    clock = Clock()
    consumer = consumer_for(store, tmp_path, clock)
    assert consumer.current_level is not None
    changes = history(30)
    store_changes(consumer, changes[:10])
    clock.now += 30
    store_changes(consumer, changes[10:])
    recorded = store.list_alerts(AlertFilter(limit=500), None)
    assert len(recorded) == 30 and {r["state"] for r in recorded} == {"history"}
    assert store.claim_due(clock.now + 1, 100, 60) == [], "history must not be sent"
    assert store.due_reminders(clock.now + 10**6, 1) == [], "nor reminded"
    [entry] = store.get_alert(recorded[0]["id"])["audit"]
    assert '"history": "from a backfill: recorded, not sent"' in entry["detail"]

    clock.now += 59
    assert consumer.current_level.run_once(consumer.directory) == 0, "not settled yet"
    clock.now += 1
    assert consumer.current_level.run_once(consumer.directory) == 1
    assert consumer.current_level.run_once(consumer.directory) == 0
    [notice] = store.list_alerts(AlertFilter(kind="current-level"), None)
    assert notice["id"] == current_level_id_for(changes[-1].change_id)
    assert (notice["old_level"], notice["new_level"], notice["state"]) == ("none", "major", "open")
    jobs = store.claim_due(clock.now, 100, 60)
    assert {(j.authority, j.channel) for j in jobs} == {(a, c) for a in (HOST, PLACER) for c in Channel}
    assert {j.content.kind for j in jobs} == {AlertKind.current_level}
    assert jobs[0].content.change.actions == [POLICE]

    # A restart (a new store on the same file) decides nothing again.
    url = store.engine.url.render_as_string(hide_password=False)
    store.close()
    reopened = AlertStore.open(url)
    try:
        again = consumer_for(reopened, tmp_path, clock)
        clock.now += 3600
        assert again.current_level is not None and again.current_level.run_once(again.directory) == 0
    finally:
        reopened.close()


def test_what_was_last_told_decides_whether_anything_is_said(store: AlertStore, tmp_path: Path) -> None:
    clock = Clock()
    consumer = consumer_for(store, tmp_path, clock)
    assert consumer.current_level is not None
    # Told Major live, then history loaded that ends at Major: nothing new to say.
    store_changes(consumer, [change(1, "none", "major", backfill=False)])
    deliver_all(store, clock.now)
    assert store.last_told_level("location", LOCATION) is Level.major
    store_changes(consumer, [change(2, "major", "minor"), change(3, "minor", "major")])
    clock.now += 60
    assert consumer.current_level.run_once(consumer.directory) == 0
    assert store.settled_backfills(clock.now) == [], "decided, and not pending any more"
    # More history, ending at none: the fall is told.
    store_changes(consumer, [change(4, "major", "moderate"), change(5, "moderate", "none")])
    clock.now += 60
    assert consumer.current_level.run_once(consumer.directory) == 1
    deliver_all(store, clock.now)
    assert store.last_told_level("location", LOCATION) is Level.none


def test_a_live_change_is_sent_as_usual_and_cancels_the_pending_notice(store: AlertStore, tmp_path: Path) -> None:
    clock = Clock()
    consumer = consumer_for(store, tmp_path, clock)
    assert consumer.current_level is not None
    store_changes(consumer, history(30))
    clock.now += 10
    store_changes(consumer, [change(31, "major", "moderate", backfill=False)])
    live = store.list_alerts(AlertFilter(limit=1), None)[0]
    assert (live["kind"], live["state"], live["new_level"]) == ("de-escalation", "open", "moderate")
    assert {j.alert_id for j in store.claim_due(clock.now, 100, 60)} == {live["id"]}
    clock.now += 3600
    assert consumer.current_level.run_once(consumer.directory) == 0


def test_a_history_replayed_after_its_notice_is_not_told_again(store: AlertStore, tmp_path: Path) -> None:
    clock = Clock()
    consumer = consumer_for(store, tmp_path, clock)
    assert consumer.current_level is not None
    changes = history(5)
    store_changes(consumer, changes)
    clock.now += 60
    assert consumer.current_level.run_once(consumer.directory) == 1
    store_changes(consumer, changes)  # the same changes again: duplicates, nothing pending
    clock.now += 60
    assert consumer.current_level.run_once(consumer.directory) == 0
