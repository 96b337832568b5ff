"""API keys of the alert service: one per authority (sees only what it received), or operator.

Same storage rules as ingest's keys (`services/apikeys.py`): only SHA-256 digests are
kept, in a TOML file, which a running service re-reads when it changes.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.identifiers import OnsCode
from services.apikeys import (
    KeyFileWatcher,
    KeyIndex,
    append_entry,
    hash_key,
    key_digest,
    read_key_file,
    unknown_key,
)


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


def _viewers(file: AlertKeyFile) -> dict[str, Viewer]:
    return {e.sha256: Viewer(e.name, e.authority) for e in file.key}


WHAT = "alert API key file"
HINT = "caresignal apikey create --for alerts"


class AlertKeys:
    def __init__(self, entries: list[AlertKeyEntry] | KeyFileWatcher[AlertKeyFile]) -> None:
        source = entries if isinstance(entries, KeyFileWatcher) else AlertKeyFile(key=entries)
        self._index: KeyIndex[AlertKeyFile, Viewer] = KeyIndex(source, _viewers)

    @classmethod
    def load(cls, path: Path) -> "AlertKeys":
        """The keys in the file now."""
        return cls(read_key_file(path, AlertKeyFile, WHAT, HINT).key)

    @classmethod
    def watch(cls, path: Path, interval_s: float = 1.0) -> "AlertKeys":
        """The keys in the file, re-read when it changes (what a running service uses)."""
        return cls(KeyFileWatcher(path, AlertKeyFile, WHAT, HINT, interval_s))

    def names(self) -> set[str]:
        return {v.name for v in self._index.values()}

    def authenticate(self, key: str) -> Viewer | None:
        return self._index.get(hash_key(key))

    def by_digest(self, digest: str) -> Viewer | None:
        return self._index.get(digest)


def append_alert_key(path: Path, entry: AlertKeyEntry) -> None:
    existing = AlertKeys.load(path).names() if path.exists() else set()
    role = "operator = true" if entry.operator else f'authority = "{entry.authority}"'
    append_entry(path, existing, entry.name, f'name = "{entry.name}"\nsha256 = "{entry.sha256}"\n{role}\n')


async def require_viewer(request: Request, digest: Annotated[str, Depends(key_digest)]) -> Viewer:
    keys: AlertKeys = request.app.state.keys
    viewer = keys.by_digest(digest)
    if viewer is None:
        raise unknown_key()
    return viewer


async def require_operator(viewer: Annotated[Viewer, Depends(require_viewer)]) -> Viewer:
    if not viewer.operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs an operator key")
    return viewer


ViewerDep = Annotated[Viewer, Depends(require_viewer)]
OperatorDep = Annotated[Viewer, Depends(require_operator)]
