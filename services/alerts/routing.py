"""Who is told about a level change, and over which contact points. Pure: no I/O.

Need to know: the host authority of a location is always told; an authority that has
placed people there is told while its placement is active; nobody else ever is. For an
organisation-level change, the same rule is applied to every location of the provider.
"""

import hashlib
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from enum import StrEnum

from schemas.alerts import AlertKind, Recipient, RecipientRole
from schemas.directory import Location, Placement, PlacementStatus
from schemas.risk import Level, LevelChange
from services.alerts.contacts import ContactBook
from services.alerts.outcomes import DeliveryOutcome


@dataclass
class Directory:
    """The latest directory records, as read from the compacted directory topics."""

    locations: dict[str, Location] = field(default_factory=dict)
    # location id -> authority -> placement
    placements: dict[str, dict[str, Placement]] = field(default_factory=dict)
    authority_names: dict[str, str] = field(default_factory=dict)
    # provider id -> its registered name, from the latest location record that carried one
    # (a page or an email looks one up without a pass over every location).
    provider_names: dict[str, str] = field(default_factory=dict)

    def put_location(self, location: Location) -> None:
        self.locations[location.location_id] = location
        if location.provider_name:
            self.provider_names[location.provider_id] = location.provider_name

    def remove_location(self, location_id: str) -> None:
        self.locations.pop(location_id, None)

    def put_placement(self, placement: Placement) -> None:
        self.placements.setdefault(placement.location_id, {})[placement.authority] = placement

    def remove_placement(self, key: str) -> None:
        location_id, _, authority = key.partition("/")
        self.placements.get(location_id, {}).pop(authority, None)

    def locations_of(self, provider_id: str) -> list[str]:
        return sorted(loc.location_id for loc in self.locations.values() if loc.provider_id == provider_id)


def _placing_authorities(directory: Directory, location_id: str) -> set[str]:
    return {
        authority
        for authority, placement in directory.placements.get(location_id, {}).items()
        if placement.status is PlacementStatus.active
    }


def route(change: LevelChange, directory: Directory) -> tuple[Recipient, ...]:
    """The authorities to tell, in a stable order, each with why and through which locations."""
    if change.scope == "location":
        locations = [change.location_id] if change.location_id else []
    else:
        # All the provider's locations, not only the troubled ones: a corporate failing
        # concerns everyone with people in any of its services.
        known = directory.locations_of(change.provider_id) if change.provider_id else []
        locations = sorted(set(known) | set(change.locations))
    roles: dict[str, set[RecipientRole]] = {}
    via: dict[str, set[str]] = {}
    for location_id in locations:
        location = directory.locations.get(location_id)
        if location is not None:
            roles.setdefault(location.host_authority, set()).add(RecipientRole.host)
            via.setdefault(location.host_authority, set()).add(location_id)
        for authority in _placing_authorities(directory, location_id):
            roles.setdefault(authority, set()).add(RecipientRole.placing)
            via.setdefault(authority, set()).add(location_id)
    return tuple(
        Recipient(authority=authority, roles=sorted(roles[authority]), locations=sorted(via[authority]))
        for authority in sorted(roles)
    )


def subject_locations(change: LevelChange) -> list[str]:
    """The locations a change is about: its location, or the organisation's troubled ones."""
    if change.scope == "location":
        return [change.location_id] if change.location_id else []
    return list(change.locations)


def unrouted_locations(change: LevelChange, directory: Directory) -> list[str]:
    """Locations of the change with no directory record: their host authority cannot be told
    (placing authorities with an active placement still are)."""
    return sorted(loc for loc in subject_locations(change) if loc not in directory.locations)


def muted_authorities(
    recipients: Iterable[Recipient], locations: Iterable[str], live_mutes: Set[tuple[str, str]]
) -> dict[str, bool]:
    """authority -> True for each recipient with a mute in force on any of the locations."""
    wanted = list(locations)
    return {r.authority: True for r in recipients if any((r.authority, loc) in live_mutes for loc in wanted)}


# --- alert and delivery identities ---------------------------------------------------


# Every alert id: `al_` and a digest; a reminder adds `-r<n>`.
ALERT_ID_PATTERN = r"^al_[0-9a-f]{24}(-r[0-9]{1,9})?$"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def alert_id_for(change_id: str) -> str:
    """Deterministic: a redelivered or replayed change maps onto the alert already stored."""
    return "al_" + _digest("change", change_id)


def current_level_id_for(change_id: str) -> str:
    """The one current-level notice after a backfill, named by the backfill's latest change:
    a restart that decides again finds it already stored."""
    return "al_" + _digest("current-level", change_id)


def reminder_id_for(alert_id: str, number: int) -> str:
    return f"{alert_id}-r{number}"


def delivery_id_for(alert_id: str, authority: str, channel: str, target: str) -> str:
    """Also the Standard Webhooks `webhook-id`: the same on every retry of one delivery."""
    return "msg_" + _digest(alert_id, authority, channel, target)


# --- which contact points, and in what state ------------------------------------------


class Channel(StrEnum):
    webhook = "webhook"
    email = "email"


@dataclass(frozen=True)
class PlannedDelivery:
    delivery_id: str
    authority: str
    channel: Channel
    target: str  # webhook endpoint id or email address
    state: DeliveryOutcome


def endpoints_gone(disabled: Mapping[str, str], contacts: ContactBook) -> frozenset[str]:
    """Endpoints that answered 410 at the URL still in force; a new URL re-enables one."""
    return frozenset(
        endpoint
        for endpoint, url in disabled.items()
        if (hook := contacts.webhook(endpoint)) is not None and hook.url == url
    )


def deciding_level(kind: AlertKind, old_level: Level, new_level: Level) -> Level:
    """The level compared with a contact point's minimum.

    A cleared notice is judged by the level that is clearing, so whoever was told of
    the rise is told of the fall; a current-level notice by the higher of the level last
    told and the level now, for the same reason.
    """
    if kind is AlertKind.current_level:
        return max(old_level, new_level)
    return old_level if kind is AlertKind.de_escalation else new_level


def tells_a_fall(kind: AlertKind, old_level: Level, new_level: Level) -> bool:
    """A fall is told even to an authority that muted the location."""
    return kind is AlertKind.de_escalation or (kind is AlertKind.current_level and new_level < old_level)


def plan_deliveries(
    alert_id: str,
    kind: AlertKind,
    old_level: Level,
    new_level: Level,
    recipients: Iterable[Recipient],
    contacts: ContactBook,
    muted: Mapping[str, bool],
    disabled_endpoints: frozenset[str] = frozenset(),
) -> list[PlannedDelivery]:
    """One delivery per recipient and contact point that wants this level.

    `muted` maps authority -> whether it has muted this alert's location. A mute still
    records the delivery (state `muted`) so the audit shows who was not told and why;
    news of a fall ignores mutes.
    """
    level = deciding_level(kind, old_level, new_level)
    fall = tells_a_fall(kind, old_level, new_level)
    plans: list[PlannedDelivery] = []
    for recipient in recipients:
        authority = recipient.authority
        is_muted = not fall and muted.get(authority, False)
        for hook in contacts.webhooks.get(authority, ()):
            if level < hook.min_level:
                continue
            state = DeliveryOutcome.pending
            if hook.endpoint_id in disabled_endpoints:
                state = DeliveryOutcome.endpoint_gone
            elif is_muted:
                state = DeliveryOutcome.muted
            plans.append(
                PlannedDelivery(
                    delivery_id_for(alert_id, authority, Channel.webhook, hook.endpoint_id),
                    authority,
                    Channel.webhook,
                    hook.endpoint_id,
                    state,
                )
            )
        for email in contacts.emails.get(authority, ()):
            if level < email.min_level:
                continue
            plans.append(
                PlannedDelivery(
                    delivery_id_for(alert_id, authority, Channel.email, email.address),
                    authority,
                    Channel.email,
                    email.address,
                    DeliveryOutcome.muted if is_muted else DeliveryOutcome.pending,
                )
            )
    return plans


def kind_of(change: LevelChange) -> AlertKind:
    return AlertKind.escalation if change.direction == "escalation" else AlertKind.de_escalation
