"""`POST /v1/events` and `POST /v1/events/batch`."""

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from schemas.events import Event
from services.ingest.auth import Caller, CallerDep
from services.ingest.context import IngestContext, IngestDep
from services.ingest.errors import (
    BatchTooLarge,
    InvalidBody,
    UnsupportedMediaType,
    problems,
    unprocessable,
)
from services.ingest.publisher import BrokerUnavailable, Delivered, OutRecord

router = APIRouter(tags=["events"])

SINGLE_MEDIA_TYPES = ("application/json", "application/cloudevents+json")
BATCH_MEDIA_TYPES = (
    "application/json",
    "application/cloudevents-batch+json",
    "application/x-ndjson",
    "application/jsonl",
)
NDJSON_MEDIA_TYPES = ("application/x-ndjson", "application/jsonl")
# Structured mode of the CloudEvents Kafka binding: the value is the whole event.
CLOUDEVENTS_CONTENT_TYPE = b"application/cloudevents+json; charset=utf-8"


def media_type(request: Request, allowed: tuple[str, ...]) -> str:
    got = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if got not in allowed:
        raise UnsupportedMediaType(got, allowed)
    return got


def permission_problem(caller: Caller, event: Event) -> str | None:
    if event.type not in caller.event_types:
        return f"source {caller.source!r} may not send {event.type}"
    if event.source != caller.source:
        return f"event source {event.source!r} does not match the API key's source {caller.source!r}"
    return None


def to_record(context: IngestContext, event: Event) -> OutRecord:
    return OutRecord(
        topic=context.topics.events,
        key=event.subject.encode(),
        value=event.model_dump_json().encode(),
        headers=(("content-type", CLOUDEVENTS_CONTENT_TYPE),),
    )


async def publish(context: IngestContext, route: str, records: list[OutRecord]) -> list[Delivered | BrokerUnavailable]:
    started = time.perf_counter()
    outcomes = await context.publisher.publish(records)
    context.metrics.produce_seconds.labels(route).observe(time.perf_counter() - started)
    return outcomes


@router.post(
    "/v1/events",
    status_code=202,
    summary="Submit one event",
    responses={
        202: {"description": "Kafka acknowledged the event (acks=all)"},
        401: {"description": "Missing or unknown API key"},
        403: {"description": "This source may not send this event type, or `source` does not match the key"},
        413: {"description": "Body over the size limit"},
        415: {"description": "Not JSON"},
        422: {"description": "Malformed JSON or an invalid field: `detail` names each field and reason"},
        503: {"description": "Kafka unavailable; nothing stored; resend the same event after Retry-After"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
        }
    },
)
async def post_event(request: Request, caller: CallerDep, context: IngestDep) -> JSONResponse:
    media_type(request, SINGLE_MEDIA_TYPES)
    raw = await request.body()
    try:
        event = context.parser.parse_json(raw)
    except ValidationError as exc:
        context.metrics.events.labels("unknown", "rejected_422").inc()
        return unprocessable(problems(exc.errors(include_input=False, include_url=False)))
    short = event.short_type
    problem = permission_problem(caller, event)
    if problem is not None:
        context.metrics.events.labels(short, "rejected_403").inc()
        return JSONResponse(status_code=403, content={"detail": problem})
    (outcome,) = await publish(context, "single", [to_record(context, event)])
    if isinstance(outcome, BrokerUnavailable):
        context.metrics.events.labels(short, "rejected_503").inc()
        raise outcome
    context.metrics.events.labels(short, "accepted").inc()
    return JSONResponse(
        status_code=202,
        content={"id": event.id, "status": "accepted", "partition": outcome.partition, "offset": outcome.offset},
    )


@dataclass
class _Item:
    index: int
    event: Event | None = None
    result: dict[str, Any] | None = None


def _split_ndjson(raw: bytes) -> Iterator[tuple[int, bytes]]:
    for line_no, line in enumerate(raw.split(b"\n"), start=1):
        if line.strip():
            yield line_no, line


def _parse_batch(raw: bytes, kind: str, context: IngestContext) -> list[_Item]:
    parser = context.parser
    limit = context.settings.max_batch_events
    items: list[_Item] = []
    if kind in NDJSON_MEDIA_TYPES:
        lines = list(_split_ndjson(raw))
        if len(lines) > limit:
            raise BatchTooLarge(len(lines), limit)
        for index, (line_no, line) in enumerate(lines):
            item = _Item(index)
            try:
                item.event = parser.parse_json(line)
            except ValidationError as exc:
                errors = problems(exc.errors(include_input=False, include_url=False), prefix=("body", index))
                item.result = {"index": index, "line": line_no, "status": "rejected", "code": 422, "errors": errors}
            items.append(item)
        return items
    try:
        decoded = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidBody("body", f"invalid JSON: {exc}") from None
    if not isinstance(decoded, list):
        raise InvalidBody("body", "a batch must be a JSON array of events (or NDJSON)")
    if len(decoded) > limit:
        raise BatchTooLarge(len(decoded), limit)
    for index, obj in enumerate(decoded):
        item = _Item(index)
        try:
            item.event = parser.parse_obj(obj)
        except ValidationError as exc:
            errors = problems(exc.errors(include_input=False, include_url=False), prefix=("body", index))
            item.result = {"index": index, "status": "rejected", "code": 422, "errors": errors}
        items.append(item)
    return items


@router.post(
    "/v1/events/batch",
    summary="Submit up to 1,000 events as a JSON array or NDJSON",
    description=(
        "Each event is validated, authorised and stored on its own: the answer has one result per "
        "item, in order. 202 when every event was accepted, 207 when some were not (see `results`), "
        "503 with Retry-After when none could be stored because Kafka is unavailable."
    ),
    responses={
        202: {"description": "Every event accepted"},
        207: {"description": "Some events rejected or not stored: see each result"},
        413: {"description": "Body or event count over the limit"},
        422: {"description": "The body as a whole is not a JSON array or NDJSON"},
        503: {"description": "Kafka unavailable; nothing stored"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/Event"}}
                },
                "application/x-ndjson": {"schema": {"type": "string", "description": "one event per line"}},
            },
        }
    },
)
async def post_batch(request: Request, caller: CallerDep, context: IngestDep) -> JSONResponse:
    kind = media_type(request, BATCH_MEDIA_TYPES)
    raw = await request.body()
    items = _parse_batch(raw, kind, context)
    if not items:
        raise InvalidBody("body", "the batch is empty")
    context.metrics.batch_size.observe(len(items))
    # Counted per batch, not per event: label lookups were a visible share of batch cost.
    counts: Counter[tuple[str, str]] = Counter()
    to_send: list[_Item] = []
    for item in items:
        if item.event is None:
            counts["unknown", "rejected_422"] += 1
            continue
        problem = permission_problem(caller, item.event)
        if problem is not None:
            counts[item.event.short_type, "rejected_403"] += 1
            item.result = {
                "index": item.index,
                "id": item.event.id,
                "status": "rejected",
                "code": 403,
                "errors": [{"loc": ["body", item.index, "type"], "msg": problem, "type": "forbidden"}],
            }
        else:
            to_send.append(item)
    outcomes = await publish(context, "batch", [to_record(context, i.event) for i in to_send if i.event])
    unavailable = 0
    for item, outcome in zip(to_send, outcomes, strict=True):
        assert item.event is not None
        if isinstance(outcome, BrokerUnavailable):
            unavailable += 1
            counts[item.event.short_type, "rejected_503"] += 1
            item.result = {
                "index": item.index,
                "id": item.event.id,
                "status": "failed",
                "code": 503,
                "retryable": True,
                "errors": [{"loc": ["body", item.index], "msg": str(outcome), "type": "broker_unavailable"}],
            }
        else:
            counts[item.event.short_type, "accepted"] += 1
            item.result = {
                "index": item.index,
                "id": item.event.id,
                "status": "accepted",
                "partition": outcome.partition,
                "offset": outcome.offset,
            }
    for (event_type, outcome_label), count in counts.items():
        context.metrics.events.labels(event_type, outcome_label).inc(count)
    results = [i.result for i in items]
    accepted = sum(1 for r in results if r and r["status"] == "accepted")
    body = {"accepted": accepted, "rejected": len(items) - accepted, "results": results}
    headers = {"Retry-After": str(context.settings.retry_after_s)} if unavailable else {}
    if accepted == len(items):
        status = 202
    elif unavailable and unavailable == len(items):
        status = 503
    else:
        status = 207
    return JSONResponse(status_code=status, content=body, headers=headers)
