"""What the board shows: need-to-know, rows, filters, counts and the CSV. Pure.

Need to know is the API's: an authority sees the locations it hosts and those where it
has an active placement (from the directory the consumer keeps), the organisations that
run them, and nothing else; an operator sees everything.
"""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.directory import PlacementStatus
from schemas.risk import Level
from services.alerts.names import Names
from services.alerts.routing import Directory

ROLES = ("host", "placing")


@dataclass(frozen=True)
class BoardRow:
    location_id: str
    name: str | None
    provider_id: str | None
    provider_name: str | None
    service_type: str | None
    host_authority: str | None
    roles: tuple[str, ...]
    level: str
    changed_at: datetime | None


@dataclass(frozen=True)
class OrganisationRow:
    provider_id: str
    name: str | None
    level: str
    changed_at: datetime | None
    locations: int


@dataclass(frozen=True)
class BoardFilter:
    role: str | None = None
    service_type: str | None = None
    level: str | None = None
    organisation: str | None = None

    def query(self) -> dict[str, str]:
        values = {
            "role": self.role,
            "service_type": self.service_type,
            "level": self.level,
            "organisation": self.organisation,
        }
        return {k: v for k, v in values.items() if v}


def visible_locations(directory: Directory, authority: str | None) -> dict[str, tuple[str, ...]] | None:
    """location id -> the authority's roles there; None for an operator (everything)."""
    if authority is None:
        return None
    roles: dict[str, set[str]] = {}
    for location in list(directory.locations.values()):
        if location.host_authority == authority:
            roles.setdefault(location.location_id, set()).add("host")
    for location_id, placements in list(directory.placements.items()):
        placement = dict(placements).get(authority)
        if placement is not None and placement.status is PlacementStatus.active:
            roles.setdefault(location_id, set()).add("placing")
    return {loc: tuple(sorted(r)) for loc, r in roles.items()}


def may_see_location(directory: Directory, authority: str | None, location_id: str) -> bool:
    visible = visible_locations(directory, authority)
    return visible is None or location_id in visible


def may_see_organisation(directory: Directory, authority: str | None, provider_id: str) -> bool:
    visible = visible_locations(directory, authority)
    if visible is None:
        return True
    return any(
        loc.provider_id == provider_id for loc in list(directory.locations.values()) if loc.location_id in visible
    )


def _when(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def location_rows(directory: Directory, levels: Iterable[dict[str, Any]], authority: str | None) -> list[BoardRow]:
    """Every location the viewer may see, newest change first, then unchanged ones by id."""
    visible = visible_locations(directory, authority)
    by_subject = {row["subject"]: row for row in levels}
    ids = set(directory.locations) | set(by_subject) if visible is None else set(visible)
    rows = []
    for location_id in ids:
        location = directory.locations.get(location_id)
        stored = by_subject.get(location_id)
        if visible is None:
            roles: tuple[str, ...] = ()
        else:
            roles = visible[location_id]
        provider_id = location.provider_id if location else (stored or {}).get("provider_id")
        rows.append(
            BoardRow(
                location_id=location_id,
                name=location.name if location else None,
                provider_id=provider_id,
                provider_name=directory.provider_names.get(provider_id or ""),
                service_type=location.service_type.value if location else None,
                host_authority=location.host_authority if location else None,
                roles=roles,
                level=stored["level"] if stored else "none",
                changed_at=_when(stored["decided_at"]) if stored else None,
            )
        )
    rows.sort(key=lambda r: (r.changed_at is None, -(r.changed_at.timestamp() if r.changed_at else 0), r.location_id))
    return rows


def apply_filter(rows: list[BoardRow], flt: BoardFilter) -> list[BoardRow]:
    return [
        r
        for r in rows
        if (flt.role is None or flt.role in r.roles)
        and (flt.service_type is None or r.service_type == flt.service_type)
        and (flt.level is None or r.level == flt.level)
        and (flt.organisation is None or r.provider_id == flt.organisation)
    ]


def counts(rows: Iterable[BoardRow]) -> dict[str, int]:
    """Locations per level, most severe first (every level present, zero or not)."""
    result = {level.name: 0 for level in sorted(Level, reverse=True)}
    for row in rows:
        result[row.level] += 1
    return result


def organisation_rows(rows: list[BoardRow], levels: Iterable[dict[str, Any]]) -> list[OrganisationRow]:
    """The organisations running the given locations, with their own (organisation-level) level."""
    stored = {row["subject"]: row for row in levels}
    sizes: dict[str, int] = {}
    names: dict[str, str] = {}
    for row in rows:
        if row.provider_id:
            sizes[row.provider_id] = sizes.get(row.provider_id, 0) + 1
            if row.provider_name:
                names[row.provider_id] = row.provider_name
    result = [
        OrganisationRow(
            provider_id=pid,
            name=names.get(pid),
            level=stored[pid]["level"] if pid in stored else "none",
            changed_at=_when(stored[pid]["decided_at"]) if pid in stored else None,
            locations=n,
        )
        for pid, n in sizes.items()
    ]
    result.sort(key=lambda o: (-int(Level[o.level]), o.changed_at is None, (o.name or o.provider_id).casefold()))
    return result


def by_severity(rows: Iterable[BoardRow]) -> list[BoardRow]:
    """Most severe first, then the newest change, then by name (a location without one by its ID)."""
    return sorted(
        rows,
        key=lambda r: (
            -int(Level[r.level]),
            r.changed_at is None,
            -(r.changed_at.timestamp() if r.changed_at else 0),
            (r.name or r.location_id).casefold(),
        ),
    )


@dataclass(frozen=True)
class Siblings:
    """An organisation's other locations, summarised: counts per level and the raised ones."""

    total: int
    counts: dict[str, int]
    raised: list[BoardRow]  # above none, most severe first, at most the limit asked for
    raised_total: int


def summarise_siblings(rows: Iterable[BoardRow], limit: int) -> Siblings:
    everything = list(rows)
    raised = by_severity(r for r in everything if r.level != Level.none.name)
    return Siblings(len(everything), counts(everything), raised[:limit], len(raised))


CSV_COLUMNS = [
    "location_id",
    "name",
    "provider_id",
    "provider_name",
    "service_type",
    "host_authority",
    "host_authority_name",
    "roles",
    "level",
    "changed_at",
]


def _cell(text: str | None) -> str:
    """A name as a spreadsheet cell: one starting with =, +, - or @ would be read as a formula."""
    value = text or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def board_csv(rows: Iterable[BoardRow], names: Names) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.location_id,
                _cell(r.name),
                r.provider_id or "",
                _cell(r.provider_name),
                r.service_type or "",
                r.host_authority or "",
                _cell(names.authority(r.host_authority)),
                " ".join(r.roles),
                r.level,
                r.changed_at.isoformat() if r.changed_at else "",
            ]
        )
    return out.getvalue()
