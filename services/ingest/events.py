"""`POST /v1/events`: one event, in CloudEvents structured or binary content mode."""

import time
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from schemas.events import Event
from services.ingest import binary_mode
from services.ingest.admission import admit, event_record
from services.ingest.answers import (
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNSUPPORTED,
    EventAccepted,
    Message,
    Problems,
    answer,
)
from services.ingest.auth import CallerDep
from services.ingest.context import IngestContext, IngestDep
from services.ingest.errors import UnsupportedMediaType, problems, unprocessable
from services.ingest.publisher import BrokerUnavailable, Delivered, OutRecord

router = APIRouter(tags=["events"])

SINGLE_MEDIA_TYPES = ("application/json", "application/cloudevents+json")


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def media_type(request: Request, allowed: tuple[str, ...]) -> str:
    got = content_type(request)
    if got not in allowed:
        raise UnsupportedMediaType(got, allowed)
    return got


def max_age(context: IngestContext) -> timedelta:
    return timedelta(days=context.settings.max_event_age_days)


async def publish(context: IngestContext, route: str, records: list[OutRecord]) -> list[Delivered | BrokerUnavailable]:
    started = time.perf_counter()
    outcomes = await context.publisher.publish(records)
    context.metrics.produce_seconds.labels(route).observe(time.perf_counter() - started)
    return outcomes


DESCRIPTION = """\
Structured mode: the body is the whole CloudEvent (`application/json` or
`application/cloudevents+json`).

Binary mode (the CloudEvents SDKs' default): the attributes are headers `ce-specversion`,
`ce-id`, `ce-source`, `ce-type`, `ce-time` and `ce-subject`; the body is the event's
`data` (`application/json`, or no Content-Type). A problem with a header is reported at
`["header", "ce-..."]`, one in the data at `["body", ...]`.

Events whose `time` is older than the age limit (400 days by default) need a key with
`backfill = true`.
"""


@router.post(
    "/v1/events",
    status_code=202,
    summary="Submit one event",
    description=DESCRIPTION,
    response_model=EventAccepted,
    responses={
        202: {"description": "Kafka acknowledged the event (acks=all)"},
        401: UNAUTHORIZED,
        403: answer(Message, "This source may not send this event type, or `source` does not match the key"),
        413: TOO_LARGE,
        415: UNSUPPORTED,
        422: answer(Problems, "Malformed JSON or an invalid field: `detail` names each field and reason"),
        503: UNAVAILABLE,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {media: {"schema": {"$ref": "#/components/schemas/Event"}} for media in SINGLE_MEDIA_TYPES},
        }
    },
)
async def post_event(request: Request, caller: CallerDep, context: IngestDep) -> JSONResponse:
    kind = content_type(request)
    binary = binary_mode.is_binary(request.headers, kind)
    if not binary:
        media_type(request, SINGLE_MEDIA_TYPES)
    raw = await request.body()
    try:
        if binary:
            event: Event = context.parser.parse_obj(binary_mode.event_object(request.headers, kind, raw))
        else:
            event = context.parser.parse_json(raw)
    except ValidationError as exc:
        context.metrics.events.labels("unknown", "rejected_422").inc()
        found = problems(exc.errors(include_input=False, include_url=False))
        return unprocessable([binary_mode.locate(p) for p in found] if binary else found)
    short = event.short_type
    refusal = admit(caller, event, max_age(context))
    if refusal is not None:
        context.metrics.events.labels(short, f"rejected_{refusal.code}").inc()
        if refusal.code == 403:
            return JSONResponse(status_code=403, content={"detail": refusal.msg})
        problem = {"loc": ["body", refusal.field], "msg": refusal.msg, "type": refusal.type}
        return unprocessable([binary_mode.locate(problem) if binary else problem])
    (outcome,) = await publish(context, "single", [event_record(context.topics, event, caller.backfill)])
    if isinstance(outcome, BrokerUnavailable):
        context.metrics.events.labels(short, "rejected_503").inc()
        raise outcome
    context.metrics.events.labels(short, "accepted").inc()
    return JSONResponse(
        status_code=202,
        content={"id": event.id, "status": "accepted", "partition": outcome.partition, "offset": outcome.offset},
    )
