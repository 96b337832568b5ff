"""`caresignal directory import-cqc FILE`: the regulator's monthly care directory
(`HSCA_Active_Locations`, .ods, .xlsx or a CSV export of that sheet) into Location records.

Kept: locations of the "Adult social care" inspection directorate that are not dormant and
have a service type CareSignal scores. Only the columns below are read into a row: the
`Registered manager` column (a person's name) only as filled or blank, and the rest of the
file (the nominated individual's and partners' names, addresses, telephone numbers...) not
at all, so none can be stored, logged or printed.

A site registered by two providers has a row per registration, each with its own location
ID, in the `HSCA_Active_Locations` sheet; the workbook's `Dual_Registration_Locations` sheet
lists the same registrations again, so it is not read (that would import them twice).
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
from services.ingest.spreadsheet import Column, Row, SpreadsheetError, read_table

LOCATION_ID = "Location ID"
PROVIDER_ID = "Provider ID"
PROVIDER_NAME = "Provider Name"
OWNERSHIP = "Provider Ownership Type"
# A provider registered as an individual or a partnership is named after people: its name
# is kept only when the row says the provider is an organisation (a company, a charity, a
# council, an NHS body).
ORGANISATION_OWNERSHIP = {"organisation", "nhs body"}
DORMANT = "Dormant (Y/N)"
CARE_HOME = "Care home?"
BEDS = "Care homes beds"
AUTHORITY = "Location Local Authority"
DIRECTORATE = "Location Inspection Directorate"
NAME = "Location Name"
MANAGER = "Registered manager"
DUAL = "Location Dual Registered"
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

COLUMNS = (
    Column(LOCATION_ID),
    Column(PROVIDER_ID),
    Column(PROVIDER_NAME),
    Column(OWNERSHIP),
    Column(DORMANT),
    Column(CARE_HOME),
    Column(BEDS),
    # Releases before 2017 called it "Local Authority".
    Column(AUTHORITY, spellings=("Local Authority",)),
    Column(DIRECTORATE),
    Column(NAME),
    # "Registered manager (note; where there is more than one manager at a location, ...)" in some releases.
    Column(MANAGER, with_note=True, presence_only=True),
    Column(DUAL),
    *(Column(flag) for flag, _kind in SERVICE_FLAGS),
)
# The other table of the workbook, told apart by its own columns.
DUAL_SHEET = (Column("Location ID"), Column("Linked Organisation ID"), Column("Relationship"))

_NAME_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2014": "-", "\u00a0": " "})
_REGISTERED_NAME = re.compile(r"^[\w .,'&()/+-]+$")


@dataclass(frozen=True)
class Unmapped:
    line: int
    name: str
    hint: str | None = None  # what to do, for the name of an authority abolished in a split

    def __str__(self) -> str:
        text = f"line {self.line}: local authority {self.name!r} is not in the ONS code list"
        return f"{text}: {self.hint}" if self.hint else text


@dataclass
class DirectoryImport:
    locations: list[Location] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    default_capacity_used: int = 0
    names_dropped: int = 0
    # Provider names not kept because the row does not say the provider is an organisation.
    provider_names_withheld: int = 0
    # How many kept locations list no registered manager: a count, never whose manager.
    without_manager: int = 0
    # How many kept locations are one of a site's two registrations (each is kept: its own ID and provider).
    dual_registered: int = 0

    def summary(self) -> str:
        parts = [f"kept {len(self.locations)} ({self.without_manager} with no registered manager listed)"]
        if self.dual_registered:
            parts.append(f"{self.dual_registered} of them registrations of a site registered by two providers")
        parts += [f"skipped {n} {why}" for why, n in sorted(self.skipped.items())]
        parts.append(f"unmapped authorities {len(self.unmapped)}")
        if self.default_capacity_used:
            parts.append(f"default capacity for {self.default_capacity_used}")
        if self.names_dropped:
            parts.append(f"names dropped (characters outside the register pattern) {self.names_dropped}")
        if self.provider_names_withheld:
            parts.append(
                f"provider names withheld (provider not registered as an organisation) {self.provider_names_withheld}"
            )
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


def _provider_name(row: Row, result: DirectoryImport) -> str | None:
    """The organisation's registered name, what the board and the emails call it; never an
    individual's or a partnership's (people's names), nor one whose ownership is not given."""
    raw = row.get(PROVIDER_NAME)
    if not raw:
        return None
    if row.get(OWNERSHIP).strip().casefold() not in ORGANISATION_OWNERSHIP:
        result.provider_names_withheld += 1
        return None
    name = registered_name(raw)
    if name is None:
        result.names_dropped += 1
    return name


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
            result.unmapped.append(Unmapped(row.line, authority_name, authorities.reorganised(authority_name)))
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
        provider_name = _provider_name(row, result) if keep_names else None
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
                provider_name=provider_name,
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
        result.dual_registered += bool(row.get(DUAL))
    return result


def _is_the_dual_sheet(path: Path) -> bool:
    try:
        read_table(path, DUAL_SHEET, {c.name for c in DUAL_SHEET})
    except SpreadsheetError:
        return False
    return True


def read_directory(
    path: Path, authorities: AuthorityNames, default_capacity: int, keep_names: bool = True
) -> DirectoryImport:
    try:
        table = read_table(path, COLUMNS, REQUIRED)
    except SpreadsheetError:
        if _is_the_dual_sheet(path):
            raise DirectoryImportError(
                f"{path}: this is the Dual_Registration_Locations table (it has Linked Organisation ID and "
                f"Relationship columns), whose registrations are rows of the HSCA_Active_Locations sheet too: "
                f"import that sheet, or the whole workbook (.ods or .xlsx)"
            ) from None
        raise
    if not any(flag in table.found for flag, _kind in SERVICE_FLAGS):
        # Without them every location would be skipped as "no scored service type".
        raise DirectoryImportError(
            f"{path}: none of the service type columns {[flag for flag, _kind in SERVICE_FLAGS]} is in the header"
        )
    return map_rows(table.rows, authorities, default_capacity, keep_names)
