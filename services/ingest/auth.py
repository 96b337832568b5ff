"""API keys: each bound to one source and to the event types that source may send.

Only SHA-256 digests of keys are stored. Keys are 256-bit random tokens, so a fast hash
is enough (there is nothing to brute-force), and lookup by digest takes the same time
whatever the key, so there is no timing side channel on comparison.
"""

import hashlib
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.events import SHORT_NAMES, TYPE_BY_SHORT_NAME
from schemas.identifiers import SourceId

KEY_PREFIX = "cs_"


class ApiKeyFileError(ValueError):
    """The API key file is missing or does not validate."""


class ApiKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    source: SourceId
    event_types: list[str] = []
    directory: bool = False

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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyRegistry:
    def __init__(self, entries: list[ApiKeyEntry]) -> None:
        self._by_digest = {
            e.sha256: Caller(
                name=e.name,
                source=e.source,
                event_types=frozenset(TYPE_BY_SHORT_NAME[t] for t in e.event_types),
                directory=e.directory,
            )
            for e in entries
        }

    @classmethod
    def load(cls, path: Path) -> "ApiKeyRegistry":
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ApiKeyFileError(f"API key file {path} does not exist (see `caresignal apikey create`)") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ApiKeyFileError(f"API key file {path} is not valid TOML: {exc}") from exc
        try:
            return cls(ApiKeyFile.model_validate(raw).key)
        except ValidationError as exc:
            raise ApiKeyFileError(f"API key file {path} is invalid: {exc}") from exc

    def names(self) -> set[str]:
        return {c.name for c in self._by_digest.values()}

    def authenticate(self, key: str) -> Caller | None:
        return self._by_digest.get(hash_key(key))


def append_key(path: Path, entry: ApiKeyEntry) -> None:
    """Add an entry to the key file, refusing a duplicate name."""
    existing = ApiKeyRegistry.load(path) if path.exists() else None
    if existing is not None and entry.name in existing.names():
        raise ApiKeyFileError(f"a key named {entry.name!r} already exists in {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    types = ", ".join(f'"{t}"' for t in entry.event_types)
    with path.open("a") as fh:
        fh.write(
            f'\n[[key]]\nname = "{entry.name}"\nsha256 = "{entry.sha256}"\n'
            f'source = "{entry.source}"\nevent_types = [{types}]\n'
            f"directory = {'true' if entry.directory else 'false'}\n"
        )
    path.chmod(0o600)


def _registry(request: Request) -> ApiKeyRegistry:
    registry: ApiKeyRegistry = request.app.state.api_keys
    return registry


async def require_caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = _registry(request).authenticate(token.strip())
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="unknown API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
