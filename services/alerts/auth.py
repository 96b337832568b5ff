"""API keys of the alert service: one per authority (sees only what it received), or operator.

Same storage rules as ingest's keys: only SHA-256 digests are kept, in a TOML file.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.identifiers import OnsCode
from services.ingest.auth import ApiKeyFileError, hash_key


class AlertKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    authority: OnsCode | None = None
    operator: bool = False

    @model_validator(mode="after")
    def _one_role(self) -> "AlertKeyEntry":
        if self.operator == (self.authority is not None):
            raise ValueError("a key is either for one `authority` or `operator = true`, not both or neither")
        return self


class AlertKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: list[AlertKeyEntry] = []


@dataclass(frozen=True)
class Viewer:
    name: str
    authority: str | None  # None: an operator, who sees every alert

    @property
    def operator(self) -> bool:
        return self.authority is None

    @property
    def actor(self) -> str:
        return f"operator:{self.name}" if self.authority is None else f"{self.authority}:{self.name}"


class AlertKeys:
    def __init__(self, entries: list[AlertKeyEntry]) -> None:
        self._by_digest = {e.sha256: Viewer(e.name, e.authority) for e in entries}

    @classmethod
    def load(cls, path: Path) -> "AlertKeys":
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ApiKeyFileError(
                f"alert API key file {path} does not exist (see `caresignal apikey create --for alerts`)"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ApiKeyFileError(f"alert API key file {path} is not valid TOML: {exc}") from exc
        try:
            return cls(AlertKeyFile.model_validate(raw).key)
        except ValidationError as exc:
            raise ApiKeyFileError(f"alert API key file {path} is invalid: {exc}") from exc

    def names(self) -> set[str]:
        return {v.name for v in self._by_digest.values()}

    def authenticate(self, key: str) -> Viewer | None:
        return self._by_digest.get(hash_key(key))


def append_alert_key(path: Path, entry: AlertKeyEntry) -> None:
    existing = AlertKeys.load(path) if path.exists() else None
    if existing is not None and entry.name in existing.names():
        raise ApiKeyFileError(f"a key named {entry.name!r} already exists in {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    role = "operator = true" if entry.operator else f'authority = "{entry.authority}"'
    with path.open("a") as fh:
        fh.write(f'\n[[key]]\nname = "{entry.name}"\nsha256 = "{entry.sha256}"\n{role}\n')
    path.chmod(0o600)


async def require_viewer(request: Request) -> Viewer:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    keys: AlertKeys = request.app.state.keys
    viewer = keys.authenticate(token.strip())
    if viewer is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return viewer


async def require_operator(viewer: Annotated[Viewer, Depends(require_viewer)]) -> Viewer:
    if not viewer.operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs an operator key")
    return viewer


ViewerDep = Annotated[Viewer, Depends(require_viewer)]
OperatorDep = Annotated[Viewer, Depends(require_operator)]
