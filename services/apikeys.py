"""What every service's API keys share: how keys are made, stored, read and presented.

Only SHA-256 digests of keys are stored. Keys are 256-bit random tokens, so a fast hash
is enough (there is nothing to brute-force), and lookup by digest takes the same time
whatever the key, so there is no timing side channel on comparison.
"""

import hashlib
import logging
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from services.file_stamp import FileStamp

log = logging.getLogger(__name__)

KEY_PREFIX = "cs_"

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")


class ApiKeyFileError(ValueError):
    """The API key file is missing or does not validate."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def read_key_file(path: Path, model: type[M], what: str, hint: str) -> M:
    """Parse and validate a TOML key file; every failure is one ApiKeyFileError."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ApiKeyFileError(f"{what} {path} does not exist (see `{hint}`)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ApiKeyFileError(f"{what} {path} is not valid TOML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ApiKeyFileError(f"{what} {path} is invalid: {exc}") from exc


def append_entry(path: Path, existing_names: set[str], name: str, body: str) -> None:
    """Add a `[[key]]` table to the file, refusing a duplicate name; the file stays 0600."""
    if name in existing_names:
        raise ApiKeyFileError(f"a key named {name!r} already exists in {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(f"\n[[key]]\n{body}")
    path.chmod(0o600)


class KeyFileWatcher(Generic[M]):
    """The last good contents of a key file, re-read when the file changes.

    A key made with `caresignal apikey create` applies within `interval_s` without a
    restart, and a key removed from the file stops working as fast. The file is looked
    at (one stat) at most every `interval_s`, on the caller's path; a broken edit or a
    deleted file keeps the last good keys and logs a warning once per change.
    """

    def __init__(
        self,
        path: Path,
        model: type[M],
        what: str,
        hint: str,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._model = model
        self._what = what
        self._hint = hint
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        # The first read raises: a service must not start on a missing or broken file.
        self._stamp = FileStamp.of(path)
        self._contents = read_key_file(path, model, what, hint)
        self._checked_at = clock()
        self.last_error: str | None = None

    def current(self) -> M:
        if self._clock() - self._checked_at >= self._interval_s and self._lock.acquire(blocking=False):
            # Another thread already checking: it gets the new keys, this caller the last ones.
            try:
                self._check()
            finally:
                self._lock.release()
        return self._contents

    def _check(self) -> None:
        self._checked_at = self._clock()
        stamp = FileStamp.of(self.path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._contents = read_key_file(self.path, self._model, self._what, self._hint)
        except ApiKeyFileError as exc:
            self.last_error = f"{exc}; keeping the last good keys"
            log.warning("%s", self.last_error)
            return
        self.last_error = None
        log.info("%s %s reloaded", self._what, self.path)


class KeyIndex(Generic[M, V]):
    """Callers by key digest, from a fixed key file or one that is watched for changes."""

    def __init__(self, source: M | KeyFileWatcher[M], index: Callable[[M], dict[str, V]]) -> None:
        self._source = source
        self._index = index
        self._indexed: M | None = None
        self._by_digest: dict[str, V] = {}

    def _current(self) -> dict[str, V]:
        contents = self._source.current() if isinstance(self._source, KeyFileWatcher) else self._source
        if contents is not self._indexed:
            # Built aside and swapped in one assignment: a concurrent reader sees old or new, never half.
            by_digest = self._index(contents)
            self._by_digest, self._indexed = by_digest, contents
        return self._by_digest

    def get(self, digest: str) -> V | None:
        return self._current().get(digest)

    def values(self) -> Iterable[V]:
        return self._current().values()


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


# Declares bearer auth in the OpenAPI document (so Swagger UI's "Authorize" sends the key);
# the header is checked below, with answers that say what is wrong.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="HTTPBearer",
    description="An API key made with `caresignal apikey create`, sent as `Authorization: Bearer <key>`.",
)


async def key_digest(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]) -> str:
    """Dependency: the bearer key's digest, or 401."""
    return bearer_digest(request)


def bearer_digest(request: Request) -> str:
    """The SHA-256 of the bearer token, or 401 if there is none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return hash_key(token.strip())


def unknown_key() -> HTTPException:
    return _unauthorized("unknown API key")
