"""What people call the things the alert service knows by code: organisations, authorities
and the sources of evidence. The board's pages, the CSV and the emails show these names,
with the code beside them where a reader may search by it.

Each name comes from the register that owns it:
- a location's and its organisation's registered names: the directory's location records
  as this service reads them (the CQC directory import carries both, from the regulator's
  `Location Name` and `Provider Name`);
- an authority's: the directory's authority records (`caresignal directory
  import-authorities`, or the demo's), else the ONS list shipped in `schemas/reference/`;
- a source's: the ingest API key file, whose entries name their source (`source_name`, or
  the key's own name when it is the only key for that source); else, for a source named
  after an authority as docs/simulator.md describes (`urn:caresignal:source:E10000030-ecm`),
  that authority's name with the rest of the id.

These are public registers' names of services, companies and public bodies; no person is
ever named. Anything without a known name is shown by its code.
"""

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schemas.identifiers import ONS_CODE_PATTERN
from services.alerts.routing import Directory
from services.apikeys import ApiKeyFileError, read_key_file
from services.file_stamp import FileStamp
from services.ingest.auth import ApiKeyFile
from services.ingest.authority_names import ONS_LIST, AuthorityListError, load_authority_names

log = logging.getLogger("caresignal.alerts.names")

# An id whose last part starts with an authority's ONS code: `...:E10000030-ecm`, `/E54000012/quality`.
_AUTHORITY_SOURCE = re.compile(r"(?:^|[:/])(?P<code>" + ONS_CODE_PATTERN.strip("^$") + r")[-/](?P<rest>[\w.-]+)$")


def source_names(file: ApiKeyFile) -> dict[str, str]:
    """source id -> name, from the ingest key file's entries.

    An entry's `source_name` wins; without one, the key's name stands for its source only
    when it is the source's one key (a second key, `history-load` say, names a use, not
    the source)."""
    named: dict[str, str] = {}
    keys: dict[str, list[str]] = {}
    for entry in file.key:
        if entry.source_name and entry.source not in named:
            named[entry.source] = entry.source_name
        keys.setdefault(entry.source, []).append(entry.name)
    for source, names in keys.items():
        if source not in named and len(names) == 1:
            named[source] = names[0]
    return named


class SourceNamesFile:
    """The ingest key file's source names, re-read when the file changes (one stat at most
    every `interval_s`). No file: no names (the alert service may run where ingest's keys
    are not); a broken edit keeps the last good names and is logged once."""

    def __init__(self, path: Path, interval_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: FileStamp | None = None
        self._names: dict[str, str] = {}
        self._checked_at: float | None = None

    def current(self) -> Mapping[str, str]:
        now = self._clock()
        due = self._checked_at is None or now - self._checked_at >= self._interval_s
        if due and self._lock.acquire(blocking=False):
            try:
                self._checked_at = now
                self._check()
            finally:
                self._lock.release()
        return self._names

    def _check(self) -> None:
        stamp = FileStamp.of(self.path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp is None:
            self._names = {}
            return
        try:
            names = source_names(read_key_file(self.path, ApiKeyFile, "ingest API key file", "caresignal apikey"))
        except ApiKeyFileError as exc:
            log.warning("source names: %s; keeping the last good names", exc)
            return
        self._names = names


def reference_authorities(path: Path = ONS_LIST) -> dict[str, str]:
    """ONS code -> name, from the shipped ONS list (what names an authority nobody imported)."""
    try:
        return dict(load_authority_names(path, aliases=None).names)
    except (AuthorityListError, OSError) as exc:
        log.warning("authority names: cannot read %s (%s): authorities show by code", path, exc)
        return {}


@dataclass(frozen=True)
class Names:
    """The names as they stand for one page or one message (the directory is read live)."""

    directory: Directory
    reference_authorities: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def location(self, location_id: str | None) -> str | None:
        location = self.directory.locations.get(location_id or "")
        return location.name if location else None

    def organisation(self, provider_id: str | None) -> str | None:
        return self.directory.provider_names.get(provider_id or "")

    def authority(self, code: str | None) -> str | None:
        code = code or ""
        return self.directory.authority_names.get(code) or self.reference_authorities.get(code)

    def source(self, source: str) -> str | None:
        if source in self.sources:
            return self.sources[source]
        found = _AUTHORITY_SOURCE.search(source)
        authority = self.authority(found["code"]) if found else None
        return f"{authority} ({found['rest']})" if found and authority else None

    # Name and code together, for the places where both help (headings show the name alone).

    def authority_label(self, code: str | None) -> str:
        name = self.authority(code)
        return f"{name} ({code})" if name else (code or "")

    def organisation_label(self, provider_id: str | None) -> str:
        name = self.organisation(provider_id)
        return f"{name} ({provider_id})" if name else f"Organisation {provider_id}"

    def location_label(self, location_id: str | None) -> str:
        name = self.location(location_id)
        return f"{name} ({location_id})" if name else f"Location {location_id}"

    def source_label(self, source: str) -> str:
        """A source's name; its id where it has none (the id is what the sender chose)."""
        return self.source(source) or source


class NameBook:
    """Where each page and message gets its Names: the directory this service keeps, the
    ONS list read once at start, and the ingest key file as it is now."""

    def __init__(
        self,
        directory: Directory,
        reference: Mapping[str, str] | None = None,
        sources: SourceNamesFile | None = None,
    ) -> None:
        self.directory = directory
        self.reference = dict(reference or {})
        self.sources = sources

    def current(self) -> Names:
        return Names(self.directory, self.reference, self.sources.current() if self.sources else {})
