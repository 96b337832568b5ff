"""Who is told (need to know: the host authority always, placing authorities while their
placement is active, nobody else) and over which contact points, in which state."""

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alerts import AlertKind, Recipient, RecipientRole
from schemas.directory import Location, Placement, PlacementStatus, ServiceType
from schemas.risk import Level, LevelChange, LevelName
from services.alerts.contacts import ContactBook, Email, Webhook
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.routing import (
    Channel,
    Directory,
    PlannedDelivery,
    alert_id_for,
    deciding_level,
    delivery_id_for,
    kind_of,
    muted_authorities,
    plan_deliveries,
    reminder_id_for,
    route,
    unrouted_locations,
)

AUTHORITIES = ["E10000030", "E06000036", "E08000025", "E09000033", "E10000016", "E54000064"]
PROVIDERS = ["1-100000001", "1-100000002", "1-100000003"]
LOCATIONS = [f"1-20000000{i}" for i in range(1, 9)]
UNKNOWN = "1-299999999"
SECRET = "whsec_" + "A" * 44

levels = st.sampled_from(list(Level))


def location(location_id: str, provider_id: str, host: str) -> Location:
    return Location(
        location_id=location_id,
        provider_id=provider_id,
        service_type=ServiceType.care_home,
        capacity=40,
        host_authority=host,
    )


def placement(location_id: str, authority: str, status: PlacementStatus = PlacementStatus.active) -> Placement:
    return Placement(authority=authority, location_id=location_id, people_placed=2, status=status)


def change(
    scope: str = "location",
    location_id: str | None = None,
    provider_id: str | None = None,
    locations: Iterable[str] = (),
    old: LevelName = LevelName.minor,
    new: LevelName = LevelName.major,
    change_id: str = "c:1",
) -> LevelChange:
    return LevelChange(
        change_id=change_id,
        sequence=1,
        scope=scope,
        location_id=location_id,
        provider_id=provider_id,
        locations=list(locations),
        old_level=old,
        new_level=new,
        direction="escalation" if Level[new.value] > Level[old.value] else "de-escalation",
        score=1.0,
        reasons=[],
        actions=[],
        meaning="",
        policy_version="test",
        decided_at=datetime(2024, 6, 1, tzinfo=UTC),
    )


def build(locations: Iterable[Location], placements: Iterable[Placement]) -> Directory:
    directory = Directory()
    for loc in locations:
        directory.put_location(loc)
    for record in placements:
        directory.put_placement(record)
    return directory


@st.composite
def directory_records(draw: st.DrawFn) -> tuple[list[Location], list[Placement]]:
    providers = PROVIDERS[: draw(st.integers(min_value=2, max_value=3))]
    known = draw(st.lists(st.sampled_from(LOCATIONS), min_size=1, max_size=len(LOCATIONS), unique=True))
    locations = [location(loc, draw(st.sampled_from(providers)), draw(st.sampled_from(AUTHORITIES))) for loc in known]
    # A history of placement records: the same key may be published several times (a
    # placement that ends is republished as ended), and some concern unknown locations.
    placements = draw(
        st.lists(
            st.builds(
                placement,
                st.sampled_from([*LOCATIONS, UNKNOWN]),
                st.sampled_from(AUTHORITIES),
                st.sampled_from(list(PlacementStatus)),
            ),
            max_size=25,
        )
    )
    return locations, placements


@st.composite
def level_changes(draw: st.DrawFn) -> LevelChange:
    old, new = draw(st.lists(st.sampled_from(list(LevelName)), min_size=2, max_size=2, unique=True))
    if draw(st.booleans()):
        return change(
            "location",
            location_id=draw(st.sampled_from([*LOCATIONS, UNKNOWN])),
            provider_id=draw(st.none() | st.sampled_from(PROVIDERS)),
            old=old,
            new=new,
        )
    return change(
        "organisation",
        provider_id=draw(st.sampled_from(PROVIDERS)),
        locations=draw(st.lists(st.sampled_from([*LOCATIONS, UNKNOWN]), unique=True, max_size=4)),
        old=old,
        new=new,
    )


# --- the oracle: written from the domain rules, not from the code ---------------------


def concerned_locations(level_change: LevelChange, locations: list[Location]) -> set[str]:
    if level_change.scope == "location":
        return {level_change.location_id} if level_change.location_id else set()
    return {loc.location_id for loc in locations if loc.provider_id == level_change.provider_id} | set(
        level_change.locations
    )


def latest_status(placements: list[Placement]) -> dict[tuple[str, str], PlacementStatus]:
    latest: dict[tuple[str, str], PlacementStatus] = {}
    for record in placements:
        latest[(record.location_id, record.authority)] = record.status
    return latest


def hosts_of(concerned: set[str], locations: list[Location]) -> dict[str, set[str]]:
    hosts: dict[str, set[str]] = {}
    for loc in locations:
        if loc.location_id in concerned:
            hosts.setdefault(loc.host_authority, set()).add(loc.location_id)
    return hosts


def active_placers_of(concerned: set[str], placements: list[Placement]) -> dict[str, set[str]]:
    placers: dict[str, set[str]] = {}
    for (loc, authority), status in latest_status(placements).items():
        if loc in concerned and status is PlacementStatus.active:
            placers.setdefault(authority, set()).add(loc)
    return placers


Records = tuple[list[Location], list[Placement]]


# --- route ---------------------------------------------------------------------------


@settings(max_examples=250)
@given(directory_records(), level_changes())
def test_exactly_the_hosts_and_active_placers_of_the_concerned_locations_are_told(
    records: Records, level_change: LevelChange
) -> None:
    locations, placements = records
    recipients = route(level_change, build(locations, placements))
    concerned = concerned_locations(level_change, locations)
    hosts = hosts_of(concerned, locations)
    placers = active_placers_of(concerned, placements)
    told = {r.authority: r for r in recipients}

    assert set(told) == set(hosts) | set(placers)
    for authority, recipient in told.items():
        expected_roles = {RecipientRole.host} if authority in hosts else set()
        if authority in placers:
            expected_roles.add(RecipientRole.placing)
        assert set(recipient.roles) == expected_roles, authority
        assert set(recipient.locations) == hosts.get(authority, set()) | placers.get(authority, set())
        assert set(recipient.locations) <= concerned


@settings(max_examples=150)
@given(directory_records(), level_changes())
def test_an_authority_whose_placements_all_ended_is_not_told(records: Records, level_change: LevelChange) -> None:
    locations, placements = records
    recipients = route(level_change, build(locations, placements))
    told = {r.authority for r in recipients}
    hosts = {loc.host_authority for loc in locations}
    statuses = latest_status(placements)
    for authority in AUTHORITIES:
        ever = {status for (_, a), status in statuses.items() if a == authority}
        if ever == {PlacementStatus.ended} and authority not in hosts:
            assert authority not in told


@settings(max_examples=100)
@given(directory_records(), level_changes())
def test_recipients_roles_and_locations_are_sorted_and_unique(records: Records, level_change: LevelChange) -> None:
    recipients = route(level_change, build(*records))
    authorities = [r.authority for r in recipients]
    assert authorities == sorted(set(authorities))
    for recipient in recipients:
        assert recipient.roles == sorted(set(recipient.roles))
        assert recipient.locations == sorted(set(recipient.locations))
        assert recipient.roles and recipient.locations


@settings(max_examples=100)
@given(directory_records(), level_changes(), st.randoms(use_true_random=False))
def test_route_is_deterministic_and_independent_of_arrival_order(
    records: Records, level_change: LevelChange, rng: Any
) -> None:
    locations, placements = records
    directory = build(locations, placements)
    first = route(level_change, directory)
    assert route(level_change, directory) == first
    # The same latest records, arriving in another order.
    latest = {(p.location_id, p.authority): p for p in placements}
    shuffled_locations, shuffled_placements = list(locations), list(latest.values())
    rng.shuffle(shuffled_locations)
    rng.shuffle(shuffled_placements)
    assert route(level_change, build(shuffled_locations, shuffled_placements)) == first


@settings(max_examples=100)
@given(directory_records(), st.sampled_from(PROVIDERS), st.lists(st.sampled_from([*LOCATIONS, UNKNOWN]), max_size=3))
def test_an_organisation_change_concerns_every_location_of_the_provider(
    records: Records, provider: str, listed: list[str]
) -> None:
    locations, _ = records
    # Every location has its own placing authority, so each concerned location shows up.
    placers = {loc: AUTHORITIES[i % len(AUTHORITIES)] for i, loc in enumerate([*LOCATIONS, UNKNOWN])}
    directory = build(locations, [placement(loc, authority) for loc, authority in placers.items()])
    level_change = change("organisation", provider_id=provider, locations=sorted(set(listed)))
    reached = {loc for r in route(level_change, directory) for loc in r.locations}
    own = {loc.location_id for loc in locations if loc.provider_id == provider}
    assert reached == own | set(listed)


def test_host_and_placing_roles_on_one_location() -> None:
    directory = build(
        [location(LOCATIONS[0], PROVIDERS[0], "E10000030")],
        [
            placement(LOCATIONS[0], "E10000030"),
            placement(LOCATIONS[0], "E06000036"),
            placement(LOCATIONS[0], "E08000025", PlacementStatus.ended),
            placement(LOCATIONS[1], "E09000033"),
        ],
    )
    assert route(change(location_id=LOCATIONS[0]), directory) == (
        Recipient(authority="E06000036", roles=[RecipientRole.placing], locations=[LOCATIONS[0]]),
        Recipient(authority="E10000030", roles=[RecipientRole.host, RecipientRole.placing], locations=[LOCATIONS[0]]),
    )


def test_a_placement_that_ended_then_restarted_is_told_and_one_that_ended_is_not() -> None:
    directory = build([location(LOCATIONS[0], PROVIDERS[0], "E10000030")], [])
    directory.put_placement(placement(LOCATIONS[0], "E06000036"))
    directory.put_placement(placement(LOCATIONS[0], "E06000036", PlacementStatus.ended))
    assert [r.authority for r in route(change(location_id=LOCATIONS[0]), directory)] == ["E10000030"]
    directory.put_placement(placement(LOCATIONS[0], "E06000036"))
    assert [r.authority for r in route(change(location_id=LOCATIONS[0]), directory)] == ["E06000036", "E10000030"]
    directory.remove_placement(f"{LOCATIONS[0]}/E06000036")
    assert [r.authority for r in route(change(location_id=LOCATIONS[0]), directory)] == ["E10000030"]


def test_an_organisation_change_names_which_locations_make_each_authority_a_recipient() -> None:
    directory = build(
        [
            location(LOCATIONS[0], PROVIDERS[0], "E10000030"),
            location(LOCATIONS[1], PROVIDERS[0], "E06000036"),
            location(LOCATIONS[2], PROVIDERS[1], "E08000025"),
        ],
        [placement(LOCATIONS[1], "E10000030"), placement(LOCATIONS[2], "E09000033")],
    )
    recipients = route(change("organisation", provider_id=PROVIDERS[0], locations=[LOCATIONS[1]]), directory)
    assert recipients == (
        Recipient(authority="E06000036", roles=[RecipientRole.host], locations=[LOCATIONS[1]]),
        Recipient(
            authority="E10000030",
            roles=[RecipientRole.host, RecipientRole.placing],
            locations=[LOCATIONS[0], LOCATIONS[1]],
        ),
    )


def test_an_unknown_location_has_no_host_and_is_named_as_unrouted() -> None:
    directory = build([location(LOCATIONS[0], PROVIDERS[0], "E10000030")], [])
    unknown = change(location_id=UNKNOWN)
    assert route(unknown, directory) == ()
    assert unrouted_locations(unknown, directory) == [UNKNOWN]
    assert unrouted_locations(change(location_id=LOCATIONS[0]), directory) == []


def test_an_active_placement_at_an_unknown_location_still_reaches_the_placing_authority() -> None:
    directory = build([], [placement(UNKNOWN, "E06000036")])
    recipients = route(change(location_id=UNKNOWN), directory)
    assert recipients == (Recipient(authority="E06000036", roles=[RecipientRole.placing], locations=[UNKNOWN]),)
    assert unrouted_locations(change(location_id=UNKNOWN), directory) == [UNKNOWN]


def test_unrouted_locations_of_an_organisation_change() -> None:
    directory = build([location(LOCATIONS[0], PROVIDERS[0], "E10000030")], [])
    org = change("organisation", provider_id=PROVIDERS[0], locations=[LOCATIONS[3], LOCATIONS[0], UNKNOWN])
    assert unrouted_locations(org, directory) == sorted([LOCATIONS[3], UNKNOWN])


@settings(max_examples=150)
@given(directory_records(), level_changes())
def test_unrouted_locations_are_exactly_the_changes_locations_missing_from_the_directory(
    records: Records, level_change: LevelChange
) -> None:
    locations, placements = records
    directory = build(locations, placements)
    missing = unrouted_locations(level_change, directory)
    known = {loc.location_id for loc in locations}
    listed = set(level_change.locations)
    if level_change.scope == "location" and level_change.location_id:
        listed = {level_change.location_id}
    assert missing == sorted(listed - known)
    # Nobody hosts a missing location: only an active placement there can reach anyone.
    for loc in missing:
        via = {r.authority for r in route(level_change, directory) if loc in r.locations}
        assert via == set(active_placers_of({loc}, placements))


# --- plan_deliveries -------------------------------------------------------------------


def hook(authority: str, endpoint_id: str, min_level: Level) -> Webhook:
    return Webhook(endpoint_id, authority, f"https://{endpoint_id}.example/hook", SECRET, min_level)


def email(authority: str, address: str, min_level: Level) -> Email:
    return Email(authority, address, min_level)


def recipient(authority: str) -> Recipient:
    return Recipient(authority=authority, roles=[RecipientRole.host], locations=[LOCATIONS[0]])


BOOK = ContactBook(
    webhooks={"E10000030": (hook("E10000030", "surrey-mash", Level.moderate),)},
    emails={"E10000030": (email("E10000030", "duty@surrey.example", Level.major),)},
)


def planned(plans: list[PlannedDelivery]) -> set[tuple[str, Channel, str, DeliveryOutcome]]:
    return {(p.authority, p.channel, p.target, p.state) for p in plans}


def plan(
    kind: AlertKind,
    old: Level,
    new: Level,
    book: ContactBook = BOOK,
    muted: dict[str, bool] | None = None,
    disabled: frozenset[str] = frozenset(),
) -> set[tuple[str, Channel, str, DeliveryOutcome]]:
    return planned(plan_deliveries("al_x", kind, old, new, [recipient("E10000030")], book, muted or {}, disabled))


PENDING_HOOK = ("E10000030", Channel.webhook, "surrey-mash", DeliveryOutcome.pending)
PENDING_EMAIL = ("E10000030", Channel.email, "duty@surrey.example", DeliveryOutcome.pending)


@pytest.mark.parametrize(
    ("kind", "old", "new", "expected"),
    [
        (AlertKind.escalation, Level.none, Level.minor, set()),
        (AlertKind.escalation, Level.minor, Level.moderate, {PENDING_HOOK}),
        (AlertKind.escalation, Level.moderate, Level.major, {PENDING_HOOK, PENDING_EMAIL}),
        # A cleared notice goes to whoever was told of the level that is clearing.
        (AlertKind.de_escalation, Level.major, Level.none, {PENDING_HOOK, PENDING_EMAIL}),
        (AlertKind.de_escalation, Level.moderate, Level.minor, {PENDING_HOOK}),
        (AlertKind.de_escalation, Level.minor, Level.none, set()),
        (AlertKind.reminder, Level.minor, Level.major, {PENDING_HOOK, PENDING_EMAIL}),
    ],
)
def test_minimum_level(kind: AlertKind, old: Level, new: Level, expected: set[Any]) -> None:
    assert plan(kind, old, new) == expected


def test_deciding_level() -> None:
    assert deciding_level(AlertKind.escalation, Level.minor, Level.major) is Level.major
    assert deciding_level(AlertKind.reminder, Level.minor, Level.major) is Level.major
    assert deciding_level(AlertKind.de_escalation, Level.major, Level.minor) is Level.major


@pytest.mark.parametrize("kind", [AlertKind.escalation, AlertKind.reminder])
def test_a_mute_records_escalations_and_reminders_as_muted(kind: AlertKind) -> None:
    assert plan(kind, Level.minor, Level.major, muted={"E10000030": True}) == {
        ("E10000030", Channel.webhook, "surrey-mash", DeliveryOutcome.muted),
        ("E10000030", Channel.email, "duty@surrey.example", DeliveryOutcome.muted),
    }
    assert plan(kind, Level.minor, Level.major, muted={"E10000030": False}) == {PENDING_HOOK, PENDING_EMAIL}
    assert plan(kind, Level.minor, Level.major, muted={"E06000036": True}) == {PENDING_HOOK, PENDING_EMAIL}


def test_a_cleared_notice_is_never_muted() -> None:
    assert plan(AlertKind.de_escalation, Level.major, Level.minor, muted={"E10000030": True}) == {
        PENDING_HOOK,
        PENDING_EMAIL,
    }


def test_a_disabled_endpoint_is_planned_as_gone_and_email_still_goes() -> None:
    for kind, old, new in [
        (AlertKind.escalation, Level.minor, Level.major),
        (AlertKind.de_escalation, Level.major, Level.minor),
    ]:
        assert plan(kind, old, new, disabled=frozenset({"surrey-mash"})) == {
            ("E10000030", Channel.webhook, "surrey-mash", DeliveryOutcome.endpoint_gone),
            PENDING_EMAIL,
        }
    assert plan(AlertKind.escalation, Level.minor, Level.major, disabled=frozenset({"other"})) == {
        PENDING_HOOK,
        PENDING_EMAIL,
    }


def test_a_recipient_without_contact_points_gets_no_delivery() -> None:
    plans = plan_deliveries(
        "al_x", AlertKind.escalation, Level.minor, Level.major, [recipient("E06000036")], BOOK, {}, frozenset()
    )
    assert plans == []


@st.composite
def contact_books(draw: st.DrawFn) -> ContactBook:
    webhooks: dict[str, tuple[Webhook, ...]] = {}
    emails: dict[str, tuple[Email, ...]] = {}
    for authority in AUTHORITIES:
        hooks = draw(st.lists(levels, max_size=2))
        webhooks[authority] = tuple(hook(authority, f"{authority.lower()}-{i}", lvl) for i, lvl in enumerate(hooks))
        addresses = draw(st.lists(levels, max_size=2))
        emails[authority] = tuple(
            email(authority, f"team{i}@{authority.lower()}.example", lvl) for i, lvl in enumerate(addresses)
        )
    return ContactBook(webhooks=webhooks, emails=emails)


@settings(max_examples=300)
@given(
    st.sampled_from(list(AlertKind)),
    levels,
    levels,
    st.lists(st.sampled_from(AUTHORITIES), unique=True),
    contact_books(),
    st.dictionaries(st.sampled_from(AUTHORITIES), st.booleans()),
    st.frozensets(st.sampled_from([f"{a.lower()}-{i}" for a in AUTHORITIES for i in range(2)])),
)
def test_plan_deliveries_matches_the_rules(
    kind: AlertKind,
    old: Level,
    new: Level,
    authorities: list[str],
    book: ContactBook,
    muted: dict[str, bool],
    disabled: frozenset[str],
) -> None:
    plans = plan_deliveries("al_p", kind, old, new, [recipient(a) for a in authorities], book, muted, disabled)
    # A current-level notice after a backfill: judged by the higher of told and now; a fall
    # is told through a mute, like a cleared notice.
    judged = {AlertKind.de_escalation: old, AlertKind.current_level: max(old, new)}.get(kind, new)
    silenced = not (kind is AlertKind.de_escalation or (kind is AlertKind.current_level and new < old))
    expected: set[tuple[str, Channel, str, DeliveryOutcome]] = set()
    for authority in authorities:
        for h in book.webhooks[authority]:
            if judged >= h.min_level:
                if h.endpoint_id in disabled:
                    state = DeliveryOutcome.endpoint_gone
                elif silenced and muted.get(authority, False):
                    state = DeliveryOutcome.muted
                else:
                    state = DeliveryOutcome.pending
                expected.add((authority, Channel.webhook, h.endpoint_id, state))
        for e in book.emails[authority]:
            if judged >= e.min_level:
                state = DeliveryOutcome.muted if silenced and muted.get(authority, False) else DeliveryOutcome.pending
                expected.add((authority, Channel.email, e.address, state))
    assert planned(plans) == expected
    assert len(plans) == len(expected)
    if kind is AlertKind.de_escalation:
        assert all(p.state is not DeliveryOutcome.muted for p in plans)
    ids = [p.delivery_id for p in plans]
    assert len(set(ids)) == len(ids)
    assert all(p.delivery_id == delivery_id_for("al_p", p.authority, p.channel, p.target) for p in plans)
    assert plan_deliveries("al_p", kind, old, new, [recipient(a) for a in authorities], book, muted, disabled) == plans
    other = plan_deliveries("al_q", kind, old, new, [recipient(a) for a in authorities], book, muted, disabled)
    assert not {p.delivery_id for p in other} & set(ids)


# --- identities ------------------------------------------------------------------------


def test_delivery_ids_differ_in_every_component() -> None:
    base = delivery_id_for("al_1", "E10000030", Channel.webhook, "surrey-mash")
    assert re.fullmatch(r"msg_[0-9a-f]{24}", base)
    assert delivery_id_for("al_1", "E10000030", Channel.webhook, "surrey-mash") == base
    variants = {
        delivery_id_for("al_2", "E10000030", Channel.webhook, "surrey-mash"),
        delivery_id_for("al_1", "E06000036", Channel.webhook, "surrey-mash"),
        delivery_id_for("al_1", "E10000030", Channel.email, "surrey-mash"),
        delivery_id_for("al_1", "E10000030", Channel.webhook, "surrey-mash-2"),
    }
    assert len(variants) == 4 and base not in variants


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_alert_id_is_deterministic_and_distinct_per_change(a: str, b: str) -> None:
    assert alert_id_for(a) == alert_id_for(a)
    assert re.fullmatch(r"al_[0-9a-f]{24}", alert_id_for(a))
    assert (alert_id_for(a) == alert_id_for(b)) == (a == b)


def test_reminder_ids_are_distinct_from_the_alert_and_from_each_other() -> None:
    alert = alert_id_for("1-200000001:7")
    reminders = {reminder_id_for(alert, n) for n in range(1, 5)}
    assert len(reminders) == 4 and alert not in reminders
    assert all(r.startswith(alert) for r in reminders)


def test_kind_of_follows_the_direction() -> None:
    assert kind_of(change(old=LevelName.minor, new=LevelName.major)) is AlertKind.escalation
    assert kind_of(change(old=LevelName.major, new=LevelName.none)) is AlertKind.de_escalation


def test_muted_authorities_needs_the_same_authority_and_one_of_the_locations() -> None:
    recipients = [
        Recipient(authority="E10000030", roles=[RecipientRole.host], locations=["1-100000001"]),
        Recipient(authority="E06000036", roles=[RecipientRole.placing], locations=["1-100000001"]),
    ]
    mutes = {("E10000030", "1-100000001"), ("E06000036", "1-100000002")}
    assert muted_authorities(recipients, ["1-100000001"], mutes) == {"E10000030": True}
    assert muted_authorities(recipients, ["1-100000001", "1-100000002"], mutes) == {
        "E10000030": True,
        "E06000036": True,
    }
    assert muted_authorities(recipients, ["1-100000003"], mutes) == {}
    assert muted_authorities(recipients, ["1-100000001"], set()) == {}
