"""The bodies ingest answers with, as models: the OpenAPI document says exactly what is sent.

Handlers build plain dicts (cheaper on the hot path); these models are what those dicts
must match, and the schemathesis run checks every answer against them.
"""

from typing import Any, Literal

from pydantic import BaseModel, Field


class Message(BaseModel):
    """401, 403, 413, 415 and 503: one sentence."""

    detail: str


class Problem(BaseModel):
    loc: list[str | int] = Field(description="where: `body`/`header`, then the field path")
    msg: str = Field(description="the reason (the submitted value is never echoed)")
    type: str


class Problems(BaseModel):
    """422: every field that is wrong, with the reason."""

    detail: list[Problem]


class EventAccepted(BaseModel):
    id: str
    status: Literal["accepted"]
    partition: int
    offset: int


class BatchItem(BaseModel):
    index: int
    status: Literal["accepted", "rejected", "failed"]
    id: str | None = None
    line: int | None = Field(default=None, description="NDJSON: the line the event was on")
    code: int | None = Field(default=None, description="the status this event alone would have had")
    partition: int | None = None
    offset: int | None = None
    retryable: bool | None = None
    errors: list[Problem] | None = None


class BatchAnswer(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItem]


class Stored(BaseModel):
    status: Literal["stored"]
    key: str
    record: dict[str, Any]


def answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"model": model, "description": description}


UNAUTHORIZED = answer(Message, "Missing or unknown API key")
TOO_LARGE = answer(Message, "Body over the size limit")
UNSUPPORTED = answer(Message, "Not JSON")
UNAVAILABLE = answer(Message, "Kafka unavailable; nothing stored; resend the same event after Retry-After")
