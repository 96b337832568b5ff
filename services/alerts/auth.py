"""API keys of the alert service: one per authority (sees only what it received), or operator.

Same storage rules as ingest's keys (`services/apikeys.py`): only SHA-256 digests are
kept, in a TOML file.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.identifiers import OnsCode
from services.apikeys import append_entry, bearer_digest, hash_key, read_key_file, unknown_key


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
        hint = "caresignal apikey create --for alerts"
        return cls(read_key_file(path, AlertKeyFile, "alert API key file", hint).key)

    def names(self) -> set[str]:
        return {v.name for v in self._by_digest.values()}

    def authenticate(self, key: str) -> Viewer | None:
        return self._by_digest.get(hash_key(key))

    def by_digest(self, digest: str) -> Viewer | None:
        return self._by_digest.get(digest)


def append_alert_key(path: Path, entry: AlertKeyEntry) -> None:
    existing = AlertKeys.load(path).names() if path.exists() else set()
    role = "operator = true" if entry.operator else f'authority = "{entry.authority}"'
    append_entry(path, existing, entry.name, f'name = "{entry.name}"\nsha256 = "{entry.sha256}"\n{role}\n')


async def require_viewer(request: Request) -> Viewer:
    keys: AlertKeys = request.app.state.keys
    viewer = keys.by_digest(bearer_digest(request))
    if viewer is None:
        raise unknown_key()
    return viewer


async def require_operator(viewer: Annotated[Viewer, Depends(require_viewer)]) -> Viewer:
    if not viewer.operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs an operator key")
    return viewer


ViewerDep = Annotated[Viewer, Depends(require_viewer)]
OperatorDep = Annotated[Viewer, Depends(require_operator)]
