"""Contact points per authority: webhook endpoints (with their secrets) and email addresses.

They live in a YAML file, not on a Kafka topic, because they carry secrets. Who the
authorities are, where locations are and who has placed people there come from the
directory topics; this file only says how each authority wants to be told.

    authorities:
      E10000030:
        webhooks:
          - id: surrey-mash            # lowercase, unique across the file; the audit names it
            url: https://example.org/caresignal
            secret_env: SURREY_WEBHOOK_SECRET   # the secret stays out of the file
            min_level: moderate
        emails:
          - address: safeguarding@surrey.example
            min_level: minor
"""

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.identifiers import OnsCode
from schemas.risk import Level, LevelName
from services.file_stamp import FileStamp

SECRET_PREFIX = "whsec_"
# Webhook ids name the endpoint in URLs (`/v1/endpoints/{id}/enable`) and in the audit.
WEBHOOK_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
WEBHOOK_ID_RULE = (
    "lowercase letters a-z, digits, '.', '_' and '-' only, starting with a letter or digit, at most 64 characters"
)


class ContactsError(ValueError):
    """The contact file cannot be read or does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_secret(secret: str) -> str:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret must start with {SECRET_PREFIX!r} (Standard Webhooks)")
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret must be base64 after 'whsec_'") from exc
    if not 24 <= len(raw) <= 64:
        raise ValueError("a webhook secret must hold 24 to 64 random bytes")
    return secret


class WebhookContact(_Strict):
    id: str
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2000)]
    secret: str | None = None
    secret_env: str | None = None
    min_level: LevelName = LevelName.minor

    @field_validator("id")
    @classmethod
    def _id_rule(cls, value: str) -> str:
        if re.fullmatch(WEBHOOK_ID_PATTERN, value) is None:
            hint = f"; did you mean {value.lower()!r}?" if re.fullmatch(WEBHOOK_ID_PATTERN, value.lower()) else ""
            raise ValueError(f"webhook id {value!r} is not allowed: use {WEBHOOK_ID_RULE}{hint}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> "WebhookContact":
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of `secret` and `secret_env`")
        if self.secret is not None:
            _check_secret(self.secret)
        return self

    def resolved_secret(self, environ: Mapping[str, str]) -> str:
        if self.secret is not None:
            return self.secret
        assert self.secret_env is not None
        value = environ.get(self.secret_env)
        if value is None:
            raise ValueError(f"webhook {self.id!r}: environment variable {self.secret_env} is not set")
        try:
            return _check_secret(value)
        except ValueError as exc:
            # Name the webhook and the variable: the message alone does not say which.
            raise ValueError(f"webhook {self.id!r}: environment variable {self.secret_env}: {exc}") from exc


class EmailContact(_Strict):
    address: Annotated[str, Field(pattern=r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$", max_length=254)]
    min_level: LevelName = LevelName.minor


class AuthorityContacts(_Strict):
    webhooks: list[WebhookContact] = []
    emails: list[EmailContact] = []


class ContactFile(_Strict):
    authorities: dict[OnsCode, AuthorityContacts] = {}

    @field_validator("authorities")
    @classmethod
    def _unique_ids(cls, value: dict[str, AuthorityContacts]) -> dict[str, AuthorityContacts]:
        seen: set[str] = set()
        for authority, contacts in value.items():
            for hook in contacts.webhooks:
                if hook.id in seen:
                    raise ValueError(f"webhook id {hook.id!r} is used twice")
                seen.add(hook.id)
            # The delivery id is derived from (alert, authority, address): a repeated
            # address would give two deliveries one id, and the alert could not be stored.
            addresses: set[str] = set()
            for email in contacts.emails:
                address = email.address.lower()
                if address in addresses:
                    raise ValueError(f"{authority}: email address {address!r} is listed twice")
                addresses.add(address)
        return value


@dataclass(frozen=True)
class Webhook:
    endpoint_id: str
    authority: str
    url: str
    secret: str
    min_level: Level


@dataclass(frozen=True)
class Email:
    authority: str
    address: str
    min_level: Level


@dataclass(frozen=True)
class ContactBook:
    """Resolved contact points, secrets included, by authority."""

    webhooks: Mapping[str, tuple[Webhook, ...]] = field(default_factory=dict)
    emails: Mapping[str, tuple[Email, ...]] = field(default_factory=dict)
    version: str = "empty"

    def webhook(self, endpoint_id: str) -> Webhook | None:
        for hooks in self.webhooks.values():
            for hook in hooks:
                if hook.endpoint_id == endpoint_id:
                    return hook
        return None

    def authorities(self) -> set[str]:
        return set(self.webhooks) | set(self.emails)


def parse_contacts(text: str, origin: str, environ: Mapping[str, str] | None = None) -> ContactBook:
    env = os.environ if environ is None else environ
    try:
        raw: Any = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ContactsError(f"{origin}: not valid YAML: {exc}") from exc
    try:
        parsed = ContactFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ContactsError(f"{origin}: {problems}") from exc
    webhooks: dict[str, tuple[Webhook, ...]] = {}
    emails: dict[str, tuple[Email, ...]] = {}
    try:
        for authority, contacts in parsed.authorities.items():
            webhooks[authority] = tuple(
                Webhook(h.id, authority, h.url, h.resolved_secret(env), Level[h.min_level.value])
                for h in contacts.webhooks
            )
            emails[authority] = tuple(
                Email(authority, e.address.lower(), Level[e.min_level.value]) for e in contacts.emails
            )
    except ValueError as exc:
        raise ContactsError(f"{origin}: {exc}") from exc
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return ContactBook(webhooks=webhooks, emails=emails, version=version)


def load_contacts(path: Path, environ: Mapping[str, str] | None = None) -> ContactBook:
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ContactsError(f"contact file {path} does not exist") from exc
    return parse_contacts(text, str(path), environ)


class ContactFileWatcher:
    """Re-reads the contact file when it changes. A broken edit keeps the last good book."""

    def __init__(self, path: Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._environ = environ
        # Never a real stamp, so the first refresh always looks, and reports a missing file.
        self._stamp: FileStamp | None = FileStamp(-1, -1, -1)
        self.book = ContactBook()
        self.last_error: str | None = None
        self._empty_seen: FileStamp | None = None

    def refresh(self) -> bool:
        """Reload if the file changed; True when a new book is in force."""
        stamp = FileStamp.of(self.path)
        if stamp == self._stamp:
            return False
        if stamp is not None and stamp.size == 0 and self.book.authorities() and stamp != self._empty_seen:
            # Writing a file truncates it first: an empty file read in between is not
            # "nobody has contact points". Applied only if it is still empty next time.
            self._empty_seen = stamp
            return False
        self._stamp = stamp
        if stamp is None:
            self.last_error = f"contact file {self.path} does not exist; keeping the last good contacts"
            return False
        try:
            self.book = load_contacts(self.path, self._environ)
        except ContactsError as exc:
            self.last_error = f"{exc}; keeping the last good contacts"
            return False
        self.last_error = None
        return True
