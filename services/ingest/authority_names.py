"""Local authority names to ONS (GSS) codes, from the ONS code list shipped in
`schemas/reference/` (or an ONS release file the operator passes).

Names are matched after normalising the wrappers that differ between publishers ("Bristol,
City of", "Bristol City Council", "City of Bristol"), never by similarity: a name that does
not match exactly is reported, because a guessed authority would send alerts about its care
homes to the wrong safeguarding team. The name of an authority abolished in a split (Cumbria
in 2023) is reported with its successors and what to do.
"""

import csv
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from schemas.identifiers import ONS_CODE_PATTERN
from services.ingest.ons_lookup import LookupLayoutError, authorities, layout_of

REFERENCE = Path(__file__).resolve().parents[2] / "schemas" / "reference"
ONS_LIST = REFERENCE / "ons_upper_tier_authorities_england.csv"
ALIASES = REFERENCE / "authority_name_aliases.csv"

_ONS_CODE = re.compile(ONS_CODE_PATTERN)
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")
# Longest first: "metropolitan borough council" must go before "borough council".
_SUFFIXES = (
    " metropolitan borough council",
    " metropolitan district council",
    " county borough council",
    " city and county council",
    " borough council",
    " county council",
    " district council",
    " city council",
    " council",
    " city of",
    " county of",
)
_PREFIXES = (
    "the ",
    "council of the ",
    "london borough of ",
    "royal borough of ",
    "city and county of ",
    "city of ",
    "county of ",
    "county ",
)


class AuthorityListError(ValueError):
    """The authority code list cannot be read."""


def normalise(name: str) -> str:
    """The comparison form of an authority name: case, '&', punctuation and wrappers removed."""
    text = name.casefold().replace("&", " and ")
    text = _PUNCTUATION.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    text = re.sub(r"\bsaint\b", "st", text)
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text, changed = text[: -len(suffix)], True
        for prefix in _PREFIXES:
            # "City of London" is the authority; "London" alone is the region, not it.
            if text.startswith(prefix) and len(text) > len(prefix) and text != "city of london":
                text, changed = text[len(prefix) :], True
    return text


@dataclass(frozen=True)
class Abolished:
    """An upper-tier authority abolished in a reorganisation, and the authorities that took its area."""

    name: str
    on: str
    successors: tuple[tuple[str, str], ...]  # (ONS code, name); one when the whole area went to one authority


# Since 2009 (an older directory would not be imported). Areas kept whole under their own
# name (Buckinghamshire 2020, Dorset 2019, North Yorkshire and Somerset 2023) need no line:
# their names map to the new unitary authorities, which cover the same ground, except
# Dorset, which gave Christchurch to Bournemouth, Christchurch and Poole in 2019.
ABOLISHED = (
    Abolished("Cumbria", "1 April 2023", (("E06000063", "Cumberland"), ("E06000064", "Westmorland and Furness"))),
    Abolished(
        "Northamptonshire",
        "1 April 2021",
        (("E06000061", "North Northamptonshire"), ("E06000062", "West Northamptonshire")),
    ),
    Abolished("Bournemouth", "1 April 2019", (("E06000058", "Bournemouth, Christchurch and Poole"),)),
    Abolished("Poole", "1 April 2019", (("E06000058", "Bournemouth, Christchurch and Poole"),)),
    Abolished("Bedfordshire", "1 April 2009", (("E06000055", "Bedford"), ("E06000056", "Central Bedfordshire"))),
    Abolished("Cheshire", "1 April 2009", (("E06000049", "Cheshire East"), ("E06000050", "Cheshire West and Chester"))),
)


@dataclass(frozen=True)
class AuthorityNames:
    by_name: dict[str, str]
    names: dict[str, str]  # code -> the list's own spelling
    columns: tuple[str, ...] = ("code", "name")  # the columns of the source the codes came from
    skipped: Counter[str] = field(default_factory=Counter)  # source rows that gave no authority, by reason

    def code_for(self, name: str) -> str | None:
        """The ONS code of a name or code, or None when it does not map without a guess."""
        text = name.strip()
        if _ONS_CODE.fullmatch(text):
            return text if text in self.names else None
        return self.by_name.get(normalise(text))

    def reorganised(self, name: str) -> str | None:
        """What to do with the name of an authority abolished in a split, which cannot map."""
        key = normalise(name)
        for gone in ABOLISHED:
            if normalise(gone.name) == key and len(gone.successors) > 1:
                successors = " and ".join(f"{name} ({code})" for code, name in gone.successors)
                return (
                    f"{gone.name} was abolished on {gone.on} and its area split between {successors}; the name "
                    f"cannot say which: import a directory published after that date, or send this location "
                    f"with its host authority (PUT /v1/locations/{{location_id}})"
                )
        return None

    def missing_from(self, other: "AuthorityNames") -> dict[str, str]:
        """`other`'s authorities that this list lacks (their names will not map with it)."""
        return {code: name for code, name in other.names.items() if code not in self.names}


def _data_lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for line in fh:
            if not line.startswith("#"):
                yield line


def load_authority_names(ons_list: Path = ONS_LIST, aliases: Path | None = ALIASES) -> AuthorityNames:
    """Names and aliases by normalised name, from the shipped code,name list or an ONS file
    (names and codes, or a lookup: its upper-tier columns, see ons_lookup). Codes outside
    England's social-care authorities (a Welsh W06, a district E07) are not kept: CareSignal's
    contracts cannot carry them; the rows that gave none are counted in `skipped`."""
    try:
        rows = list(csv.reader(_data_lines(ons_list)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AuthorityListError(f"{ons_list}: {exc}") from exc
    if not rows:
        raise AuthorityListError(f"{ons_list}: empty")
    try:
        layout = layout_of(rows[0])
    except LookupLayoutError as exc:
        raise AuthorityListError(f"{ons_list}: {exc}") from exc
    found = authorities(rows[1:], layout)
    by_name: dict[str, str] = {}
    names: dict[str, str] = {}
    clashes: list[str] = []
    for code, name in found.entries:
        names[code] = name
        key = normalise(name)
        if by_name.get(key, code) != code:
            clashes.append(f"{name!r} ({by_name[key]} and {code})")
        by_name[key] = code
    if clashes:
        raise AuthorityListError(f"{ons_list}: names that normalise alike for two codes: {', '.join(clashes)}")
    if aliases is not None:
        for alias, code in csv.reader(list(_data_lines(aliases))[1:]):
            if code in names:
                by_name.setdefault(normalise(alias), code)
    for gone in ABOLISHED:
        # A merge is no guess: the whole old area is in the one successor.
        if len(gone.successors) == 1 and gone.successors[0][0] in names:
            by_name.setdefault(normalise(gone.name), gone.successors[0][0])
    return AuthorityNames(by_name=by_name, names=names, columns=layout.columns, skipped=found.skipped)
