"""Local authority names to ONS (GSS) codes, from the ONS code list shipped in
`schemas/reference/` (or an ONS release file the operator passes).

Names are matched after normalising the wrappers that differ between publishers ("Bristol,
City of", "Bristol City Council", "City of Bristol"), never by similarity: a name that does
not match exactly is reported, because a guessed authority would send alerts about its care
homes to the wrong safeguarding team.
"""

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.identifiers import ONS_CODE_PATTERN

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
class AuthorityNames:
    by_name: dict[str, str]
    names: dict[str, str]  # code -> the list's own spelling

    def code_for(self, name: str) -> str | None:
        """The ONS code of a name or code, or None when it does not map without a guess."""
        text = name.strip()
        if _ONS_CODE.fullmatch(text):
            return text if text in self.names else None
        return self.by_name.get(normalise(text))


def _data_lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for line in fh:
            if not line.startswith("#"):
                yield line


def _code_and_name_columns(header: list[str]) -> tuple[int, int]:
    lowered = [h.strip().lower() for h in header]
    if "code" in lowered and "name" in lowered:
        return lowered.index("code"), lowered.index("name")
    # An ONS release as downloaded: CTYUA23CD, CTYUA23NM, CTYUA23NMW, ...
    codes = [i for i, h in enumerate(lowered) if h.endswith("cd")]
    names = [i for i, h in enumerate(lowered) if h.endswith("nm")]
    if codes and names:
        return codes[0], names[0]
    raise AuthorityListError(f"needs columns code,name (or an ONS ...CD and ...NM pair); found {header}")


def load_authority_names(ons_list: Path = ONS_LIST, aliases: Path | None = ALIASES) -> AuthorityNames:
    """Names and aliases by normalised name. Codes outside England's social-care authorities
    (a Welsh W06, a district E07) are skipped: CareSignal's contracts cannot carry them."""
    try:
        rows = list(csv.reader(_data_lines(ons_list)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AuthorityListError(f"{ons_list}: {exc}") from exc
    if not rows:
        raise AuthorityListError(f"{ons_list}: empty")
    code_at, name_at = _code_and_name_columns(rows[0])
    by_name: dict[str, str] = {}
    names: dict[str, str] = {}
    clashes: list[str] = []
    for row in rows[1:]:
        if len(row) <= max(code_at, name_at):
            continue
        code, name = row[code_at].strip(), row[name_at].strip()
        if not _ONS_CODE.fullmatch(code):
            continue
        names[code] = name
        key = normalise(name)
        if by_name.get(key, code) != code:
            clashes.append(f"{name!r} ({by_name[key]} and {code})")
        by_name[key] = code
    if aliases is not None:
        for alias, code in csv.reader(list(_data_lines(aliases))[1:]):
            if code in names:
                by_name.setdefault(normalise(alias), code)
    if clashes:
        raise AuthorityListError(f"{ons_list}: names that normalise alike for two codes: {', '.join(clashes)}")
    return AuthorityNames(by_name=by_name, names=names)
