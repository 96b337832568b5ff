"""`caresignal directory import-cqc FILE`: the regulator's monthly care directory
(`HSCA_Active_Locations`, .ods or its CSV export) into Location records.

Kept: locations of the "Adult social care" inspection directorate that are not dormant and
have a service type CareSignal scores. Read, and never stored: the `Registered manager`
column (a person's name), addresses and postcodes, telephone numbers, web addresses; a
Location has no field for any of them, and none is logged or printed.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from schemas.directory import Location, ServiceType
from services.ingest.authority_names import AuthorityNames
from services.ingest.directory_import import DirectoryImportError, RowProblem
from services.ingest.spreadsheet import Row, column_key, read_table

LOCATION_ID = "Location ID"
PROVIDER_ID = "Provider ID"
DORMANT = "Dormant (Y/N)"
CARE_HOME = "Care home?"
BEDS = "Care homes beds"
AUTHORITY = "Location Local Authority"
DIRECTORATE = "Location Inspection Directorate"
NAME = "Location Name"
MANAGER = "Registered manager"
ADULT_SOCIAL_CARE = "adult social care"

REQUIRED = {LOCATION_ID, PROVIDER_ID, DORMANT, BEDS, AUTHORITY, DIRECTORATE}

# First match wins. Bed-based services first, nursing before residential (a home
# registered for both has nursing beds, the more acute service); then the more specific
# settings of personal care at home before plain domiciliary care, since supported living,
# extra care and shared lives are registered under the same regulated activity.
SERVICE_FLAGS: tuple[tuple[str, ServiceType], ...] = (
    ("Service type - Care home service with nursing", ServiceType.nursing_home),
    ("Service type - Care home service without nursing", ServiceType.care_home),
    ("Service type - Shared Lives", ServiceType.shared_lives),
    ("Service type - Extra Care housing services", ServiceType.extra_care),
    ("Service type - Supported living service", ServiceType.supported_living),
    ("Service type - Domiciliary care service", ServiceType.home_care),
)
BED_BASED = {ServiceType.nursing_home, ServiceType.care_home}

_NAME_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2014": "-", "\u00a0": " "})
_REGISTERED_NAME = re.compile(r"^[\w .,'&()/+-]+$")


@dataclass(frozen=True)
class Unmapped:
    line: int
    name: str

    def __str__(self) -> str:
        return f"line {self.line}: local authority {self.name!r} is not in the ONS code list"


@dataclass
class DirectoryImport:
    locations: list[Location] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    default_capacity_used: int = 0
    names_dropped: int = 0
    # How many kept locations list no registered manager: a count, never whose manager.
    without_manager: int = 0

    def summary(self) -> str:
        parts = [f"kept {len(self.locations)} ({self.without_manager} with no registered manager listed)"]
        parts += [f"skipped {n} {why}" for why, n in sorted(self.skipped.items())]
        parts.append(f"unmapped authorities {len(self.unmapped)}")
        if self.default_capacity_used:
            parts.append(f"default capacity for {self.default_capacity_used}")
        if self.names_dropped:
            parts.append(f"names dropped (characters outside the register pattern) {self.names_dropped}")
        return ", ".join(parts)


def _yes(value: str) -> bool:
    return value.strip().casefold() in ("y", "yes", "true", "1")


def service_type(row: Row) -> ServiceType | None:
    for column, kind in SERVICE_FLAGS:
        if _yes(row.get(column)):
            return kind
    # Some releases mark a care home only in "Care home?" with no service-type flag.
    return ServiceType.care_home if _yes(row.get(CARE_HOME)) else None


def registered_name(raw: str) -> str | None:
    name = " ".join(raw.translate(_NAME_QUOTES).split())
    return name if name and len(name) <= 160 and _REGISTERED_NAME.fullmatch(name) else None


def _beds(raw: str) -> int | None:
    try:
        beds = int(float(raw)) if raw else 0
    except ValueError:
        return None
    return beds


def map_rows(
    rows: Iterable[Row],
    authorities: AuthorityNames,
    default_capacity: int,
    keep_names: bool = True,
) -> DirectoryImport:
    result = DirectoryImport()
    seen: dict[str, int] = {}
    for row in rows:
        if row.get(DIRECTORATE).casefold() != ADULT_SOCIAL_CARE:
            result.skipped["not adult social care"] += 1
            continue
        if _yes(row.get(DORMANT)):
            result.skipped["dormant"] += 1
            continue
        kind = service_type(row)
        if kind is None:
            result.skipped["with no scored service type"] += 1
            continue
        authority_name = row.get(AUTHORITY)
        host = authorities.code_for(authority_name) if authority_name else None
        if host is None:
            result.unmapped.append(Unmapped(row.line, authority_name))
            continue
        beds = _beds(row.get(BEDS))
        if beds is None:
            result.problems.append(RowProblem(row.line, BEDS, "not a number"))
            continue
        capacity = beds
        if kind not in BED_BASED or beds < 1:
            # No beds column for care at home; a care home listed with no beds is new or odd.
            capacity = default_capacity
            result.default_capacity_used += 1
        name = registered_name(row.get(NAME)) if keep_names else None
        if keep_names and row.get(NAME) and name is None:
            result.names_dropped += 1
        location_id = row.get(LOCATION_ID)
        if location_id in seen:
            result.problems.append(RowProblem(row.line, LOCATION_ID, f"repeats line {seen[location_id]}"))
            continue
        seen[location_id] = row.line
        manager_listed = bool(row.get(MANAGER))
        try:
            location = Location(
                location_id=location_id,
                provider_id=row.get(PROVIDER_ID),
                service_type=kind,
                capacity=capacity,
                host_authority=host,
                name=name,
            )
        except ValidationError as exc:
            for err in exc.errors(include_input=False):
                column = {"location_id": LOCATION_ID, "provider_id": PROVIDER_ID, "capacity": BEDS}.get(
                    str(err["loc"][0]) if err["loc"] else "", "(row)"
                )
                result.problems.append(RowProblem(row.line, column, err["msg"]))
            continue
        result.locations.append(location)
        result.without_manager += not manager_listed
    return result


def read_directory(
    path: Path, authorities: AuthorityNames, default_capacity: int, keep_names: bool = True
) -> DirectoryImport:
    header, rows = read_table(path, REQUIRED)
    present = {column_key(h) for h in header}
    if not any(column_key(flag) in present for flag, _kind in SERVICE_FLAGS):
        # Without them every location would be skipped as "no scored service type".
        raise DirectoryImportError(
            f"{path}: none of the service type columns {[flag for flag, _kind in SERVICE_FLAGS]} is in the header"
        )
    return map_rows(rows, authorities, default_capacity, keep_names)
