"""What every service's API keys share: how keys are made, stored, read and presented.

Only SHA-256 digests of keys are stored. Keys are 256-bit random tokens, so a fast hash
is enough (there is nothing to brute-force), and lookup by digest takes the same time
whatever the key, so there is no timing side channel on comparison.
"""

import hashlib
import secrets
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from pydantic import BaseModel, ValidationError

KEY_PREFIX = "cs_"

M = TypeVar("M", bound=BaseModel)


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


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def bearer_digest(request: Request) -> str:
    """The SHA-256 of the bearer token, or 401 if there is none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    return hash_key(token.strip())


def unknown_key() -> HTTPException:
    return _unauthorized("unknown API key")
