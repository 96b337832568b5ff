"""Whether a valid event may be stored for this caller, and the Kafka record it becomes.

Shared by every way an event arrives (structured, binary, batch), so that all of them
refuse the same events for the same reasons and write the same record.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.events import Event
from schemas.topics import BACKFILL_HEADER, Topics
from services.ingest.auth import Caller
from services.ingest.publisher import OutRecord

# Structured mode of the CloudEvents Kafka binding: the value is the whole event.
CLOUDEVENTS_CONTENT_TYPE = b"application/cloudevents+json; charset=utf-8"


@dataclass(frozen=True)
class Refusal:
    """Why a valid event is not stored: `field` is the event attribute it is about."""

    code: int
    field: str
    msg: str
    type: str


def admit(caller: Caller, event: Event, max_age: timedelta, now: datetime | None = None) -> Refusal | None:
    if event.type not in caller.event_types:
        return Refusal(403, "type", f"source {caller.source!r} may not send {event.type}", "forbidden")
    if event.source != caller.source:
        return Refusal(
            403,
            "source",
            f"event source {event.source!r} does not match the API key's source {caller.source!r}",
            "forbidden",
        )
    if not caller.backfill and event.time < (now or datetime.now(UTC)) - max_age:
        # A live producer sending the past would have authorities alerted about it as news.
        return Refusal(
            422,
            "time",
            f"older than {max_age.days} days; history is loaded with a backfill key",
            "event_too_old",
        )
    return None


def event_record(topics: Topics, event: Event, backfill: bool) -> OutRecord:
    headers: tuple[tuple[str, bytes], ...] = (("content-type", CLOUDEVENTS_CONTENT_TYPE),)
    if backfill:
        headers += ((BACKFILL_HEADER, b"1"),)
    return OutRecord(
        topic=topics.events,
        key=event.subject.encode(),
        value=event.model_dump_json().encode(),
        headers=headers,
    )
