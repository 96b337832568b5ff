"""`caresignal directory import-placements FILE`: an authority's own aggregated extract of
its placements (authority, location ID, number of people placed, active or ended).

Extracts come out of case-management systems that hold everything about each person, so
the file's columns are an allow-list: any other column refuses the whole file, naming it,
before a single value is read. An extract with one row per person is not aggregated: two
rows for the same authority and location are refused too.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from schemas.directory import Placement, PlacementStatus
from services.ingest.authority_names import AuthorityNames
from services.ingest.directory_import import DirectoryImportError, RowProblem
from services.ingest.spreadsheet import Column, Row, column_key, read_table

AUTHORITY = "authority"
LOCATION_ID = "location id"
PEOPLE_PLACED = "people placed"
STATUS = "status"
COLUMNS = (AUTHORITY, LOCATION_ID, PEOPLE_PLACED, STATUS)

# Other headings for the same four columns; anything else is refused.
_SPELLINGS = {
    AUTHORITY: ("authority", "authority code", "ons code", "placing authority", "local authority", "la code"),
    LOCATION_ID: ("location id", "cqc location id", "location", "cqc id"),
    PEOPLE_PLACED: ("people placed", "number of people placed", "number placed", "placed", "people"),
    STATUS: ("status", "placement status", "active or ended"),
}
ALIASES = {
    variant: canonical
    for canonical, variants in _SPELLINGS.items()
    for spelling in variants
    for variant in (spelling, spelling.replace(" ", "_"), spelling.replace(" ", "-"))
}
READ_COLUMNS = tuple(
    Column(canonical, spellings=tuple(v for v, c in ALIASES.items() if c == canonical)) for canonical in COLUMNS
)

# Headings that name personal data get their own message: the extract is not aggregated.
_PERSONAL = re.compile(
    r"\b(name|names|forename|forenames|surname|first name|last name|initials|dob|d o b|birth|born|age|nhs|"
    r"address|addresses|postcode|post code|postal code|email|e mail|phone|telephone|mobile|gender|sex|"
    r"ethnicity|religion|national insurance|ni number|person|people id|client|service user|resident|patient|"
    r"mosaic|case|notes|comments?|reason|diagnosis|needs)\b"
)


class PersonalDataColumn(DirectoryImportError):
    """The extract has a column that is not one of the four aggregated columns."""


def _heading_key(heading: str) -> str:
    return column_key(re.sub(r"[_\-]", " ", heading))


def check_columns(header: list[str]) -> None:
    for heading in header:
        if not heading:
            continue
        if ALIASES.get(heading.casefold()) or ALIASES.get(_heading_key(heading)):
            continue
        if _PERSONAL.search(_heading_key(heading)):
            raise PersonalDataColumn(
                f"column {heading!r} could hold personal data; an extract must be aggregated, with only the "
                f"columns {', '.join(COLUMNS)}: remove it and import again (nothing was read)"
            )
        raise PersonalDataColumn(
            f"unknown column {heading!r}: only {', '.join(COLUMNS)} are read, so that no column "
            f"holding personal data can come in under another name; remove it (nothing was read)"
        )


@dataclass
class PlacementsImport:
    placements: list[Placement] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def map_rows(rows: Iterable[Row], authorities: AuthorityNames, authority: str | None) -> PlacementsImport:
    result = PlacementsImport()
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        raw_authority = row.get(AUTHORITY) or authority or ""
        code = authorities.code_for(raw_authority) if raw_authority else None
        if code is None:
            result.problems.append(
                RowProblem(row.line, AUTHORITY, f"{raw_authority!r} is not an authority in the ONS code list")
            )
            continue
        if authority is not None and code != authority:
            result.problems.append(RowProblem(row.line, AUTHORITY, f"{code} is not --authority {authority}"))
            continue
        status = row.get(STATUS).casefold()
        if status not in PlacementStatus.__members__:
            result.problems.append(RowProblem(row.line, STATUS, f"{row.get(STATUS)!r} is not 'active' or 'ended'"))
            continue
        location_id = row.get(LOCATION_ID)
        if (code, location_id) in seen:
            result.problems.append(
                RowProblem(
                    row.line,
                    LOCATION_ID,
                    f"repeats line {seen[code, location_id]}: an extract has one row per authority and location",
                )
            )
            continue
        seen[code, location_id] = row.line
        try:
            people = int(row.get(PEOPLE_PLACED))
        except ValueError:
            result.problems.append(RowProblem(row.line, PEOPLE_PLACED, "not a whole number"))
            continue
        try:
            result.placements.append(
                Placement(authority=code, location_id=location_id, people_placed=people, status=PlacementStatus(status))
            )
        except ValidationError as exc:
            for err in exc.errors(include_input=False):
                column = {"location_id": LOCATION_ID, "people_placed": PEOPLE_PLACED}.get(str(err["loc"][0]), "(row)")
                result.problems.append(RowProblem(row.line, column, err["msg"]))
    return result


def read_extract(path: Path, authorities: AuthorityNames, authority: str | None = None) -> PlacementsImport:
    required = {LOCATION_ID, PEOPLE_PLACED, STATUS} | ({AUTHORITY} if authority is None else set())
    table = read_table(path, READ_COLUMNS, required)
    check_columns(table.header)
    return map_rows(table.rows, authorities, authority)
