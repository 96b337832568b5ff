"""Which columns of an ONS file hold the upper-tier authorities (the councils with adult
social care duties), and which authority each row gives.

ONS publishes names-and-codes files and lookups in many layouts, one pair of columns per
geography, named by a prefix, the year and CD or NM: `CTYUA23CD`, `CTYUA23NM` (counties
and unitary authorities), `UTLA23CD`/`UTLA23NM` (upper tier), `CTY21CD`/`CTY21NM`
(counties), `LAD23CD`/`LAD23NM` and `LTLA23CD`/`LTLA23NM` (districts, the lower tier). A
lookup from districts to the upper tier lists every district, so its first pair is the
lower tier: taking it would drop every county council (E10) and leave all their care
services unmapped. So the upper-tier pair is always taken, whatever its place.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas.identifiers import ONS_CODE_PATTERN

_PAIR = re.compile(r"^([a-z]+)([0-9]{2})(cd|nm)$")
# Preference order: a file with both county (E10 only) and county-and-unitary columns has the latter complete.
UPPER_TIER = ("ctyua", "utla", "cty")
LOWER_TIER = ("lad", "ltla")
_AUTHORITY = re.compile(ONS_CODE_PATTERN)
# Metropolitan counties (E11) and Inner/Outer London (E13) have no council: their districts are the authorities.
_NO_COUNCIL = re.compile(r"^E1[13][0-9]{6}$")


class LookupLayoutError(ValueError):
    """The file has no columns that give the upper-tier authorities."""


@dataclass(frozen=True)
class Pair:
    code: int
    name: int
    code_header: str
    name_header: str


@dataclass(frozen=True)
class Layout:
    upper: Pair
    lower: Pair | None = None  # where the upper tier has no council (or is blank), the district is the authority

    @property
    def columns(self) -> tuple[str, ...]:
        pairs = [self.upper] if self.lower is None else [self.upper, self.lower]
        return tuple(h for p in pairs for h in (p.code_header, p.name_header))


@dataclass
class Authorities:
    entries: list[tuple[str, str]] = field(default_factory=list)  # (code, name), one per row that gives one
    skipped: Counter[str] = field(default_factory=Counter)  # rows that give none, by reason


def layout_of(header: Sequence[str]) -> Layout:
    lowered = [h.strip().casefold() for h in header]
    if "code" in lowered and "name" in lowered:
        code, name = lowered.index("code"), lowered.index("name")
        return Layout(Pair(code, name, header[code].strip(), header[name].strip()))
    pairs: dict[str, dict[str, int]] = {}
    for i, h in enumerate(lowered):
        if match := _PAIR.fullmatch(h):
            pairs.setdefault(match.group(1), {}).setdefault(match.group(3), i)
    complete = {prefix: p for prefix, p in pairs.items() if {"cd", "nm"} <= set(p)}

    def pick(kinds: Sequence[str]) -> Pair | None:
        for kind in kinds:
            if kind in complete:
                p = complete[kind]
                return Pair(p["cd"], p["nm"], header[p["cd"]].strip(), header[p["nm"]].strip())
        return None

    upper = pick(UPPER_TIER)
    if upper is not None:
        return Layout(upper, pick(LOWER_TIER))
    found = [header[i].strip() for p in pairs.values() for i in sorted(p.values())]
    if found:
        raise LookupLayoutError(
            f"its code columns ({', '.join(found)}) are not upper-tier: they would give districts and no county "
            f"council, so every care service in a county would be left unmapped. Use a file with upper-tier "
            f"columns: CTYUA..CD/CTYUA..NM or UTLA..CD/UTLA..NM (e.g. ONS's 'Local Authority District to County "
            f"and Unitary Authority (April 2023) Lookup in EW', or 'Counties and Unitary Authorities (April 2023) "
            f"Names and Codes'), or a code,name list"
        )
    raise LookupLayoutError(f"needs columns code,name or an ONS upper-tier ..CD/..NM pair; found {list(header)}")


def _cell(row: Sequence[str], at: int) -> str:
    return row[at].strip() if at < len(row) else ""


def authorities(rows: Iterable[Sequence[str]], layout: Layout) -> Authorities:
    """The upper-tier authority of each row, or why it gives none (counted, by reason)."""
    result = Authorities()
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        code, name = _cell(row, layout.upper.code), _cell(row, layout.upper.name)
        if _AUTHORITY.fullmatch(code):
            result.entries.append((code, name))
            continue
        if layout.lower is not None and (not code or _NO_COUNCIL.fullmatch(code)):
            district = _cell(row, layout.lower.code)
            if _AUTHORITY.fullmatch(district):
                result.entries.append((district, _cell(row, layout.lower.name)))
                continue
        first = (code or (_cell(row, layout.lower.code) if layout.lower else ""))[:1]
        result.skipped[_REASONS.get(first, "without an English social-care authority code")] += 1
    return result


_REASONS = {"W": "in Wales", "S": "in Scotland", "N": "in Northern Ireland"}
