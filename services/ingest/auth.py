"""Ingest API keys: each bound to one source and to the event types that source may send."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.directory import RegisteredName
from schemas.events import SHORT_NAMES, TYPE_BY_SHORT_NAME
from schemas.identifiers import SourceId
from services.apikeys import (
    ApiKeyFileError,
    KeyFileWatcher,
    KeyIndex,
    append_entry,
    hash_key,
    key_digest,
    new_key,
    read_key_file,
    unknown_key,
)

__all__ = ["ApiKeyEntry", "ApiKeyFileError", "ApiKeyRegistry", "CallerDep", "append_key", "hash_key", "new_key"]


class ApiKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    source: SourceId
    # What people call the source ("Kent County Council call monitoring"): the risk board
    # and the alert emails show it instead of the source id (the alert service reads it).
    source_name: RegisteredName | None = None
    event_types: list[str] = []
    directory: bool = False
    # May send events older than the ingest age limit (loading history); they are marked
    # as backfill on the topic so that nobody is alerted about the past one change at a time.
    backfill: bool = False

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - SHORT_NAMES)
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {sorted(SHORT_NAMES)}")
        return values


class ApiKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: list[ApiKeyEntry] = []


@dataclass(frozen=True)
class Caller:
    name: str
    source: str
    event_types: frozenset[str]  # full CloudEvents type names
    directory: bool
    backfill: bool = False


def _callers(file: ApiKeyFile) -> dict[str, Caller]:
    return {
        e.sha256: Caller(
            name=e.name,
            source=e.source,
            event_types=frozenset(TYPE_BY_SHORT_NAME[t] for t in e.event_types),
            directory=e.directory,
            backfill=e.backfill,
        )
        for e in file.key
    }


WHAT = "API key file"
HINT = "caresignal apikey create"


class ApiKeyRegistry:
    def __init__(self, entries: list[ApiKeyEntry] | KeyFileWatcher[ApiKeyFile]) -> None:
        source = entries if isinstance(entries, KeyFileWatcher) else ApiKeyFile(key=entries)
        self._index: KeyIndex[ApiKeyFile, Caller] = KeyIndex(source, _callers)

    @classmethod
    def load(cls, path: Path) -> "ApiKeyRegistry":
        """The keys in the file now."""
        return cls(read_key_file(path, ApiKeyFile, WHAT, HINT).key)

    @classmethod
    def watch(cls, path: Path, interval_s: float = 1.0) -> "ApiKeyRegistry":
        """The keys in the file, re-read when it changes (what a running service uses)."""
        return cls(KeyFileWatcher(path, ApiKeyFile, WHAT, HINT, interval_s))

    def names(self) -> set[str]:
        return {c.name for c in self._index.values()}

    def authenticate(self, key: str) -> Caller | None:
        return self._index.get(hash_key(key))

    def authenticate_digest(self, digest: str) -> Caller | None:
        return self._index.get(digest)


def append_key(path: Path, entry: ApiKeyEntry) -> None:
    """Add an entry to the key file, refusing a duplicate name."""
    existing = ApiKeyRegistry.load(path).names() if path.exists() else set()
    types = ", ".join(f'"{t}"' for t in entry.event_types)
    # A registered name has no quote or backslash: a TOML basic string holds it as it is.
    label = f'source_name = "{entry.source_name}"\n' if entry.source_name else ""
    append_entry(
        path,
        existing,
        entry.name,
        f'name = "{entry.name}"\nsha256 = "{entry.sha256}"\nsource = "{entry.source}"\n{label}'
        f"event_types = [{types}]\ndirectory = {'true' if entry.directory else 'false'}\n"
        f"backfill = {'true' if entry.backfill else 'false'}\n",
    )


def _registry(request: Request) -> ApiKeyRegistry:
    registry: ApiKeyRegistry = request.app.state.api_keys
    return registry


async def require_caller(request: Request, digest: Annotated[str, Depends(key_digest)]) -> Caller:
    caller = _registry(request).authenticate_digest(digest)
    if caller is None:
        raise unknown_key()
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
