"""`POST /v1/events/batch`: up to 1,000 events, each validated, authorised and stored on its own."""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from schemas.events import Event
from services.ingest.admission import admit, event_record
from services.ingest.answers import UNAUTHORIZED, UNSUPPORTED, BatchAnswer, Message, Problems, answer
from services.ingest.auth import CallerDep
from services.ingest.context import IngestContext, IngestDep
from services.ingest.errors import BatchTooLarge, InvalidBody, problems
from services.ingest.events import max_age, media_type, publish
from services.ingest.publisher import BrokerUnavailable, Delivered

router = APIRouter(tags=["events"])

BATCH_MEDIA_TYPES = (
    "application/json",
    "application/cloudevents-batch+json",
    "application/x-ndjson",
    "application/jsonl",
)
NDJSON_MEDIA_TYPES = ("application/x-ndjson", "application/jsonl")


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
        "503 with Retry-After when none could be stored because Kafka is unavailable. Events older "
        "than the age limit are refused one by one unless the key may backfill."
    ),
    status_code=202,
    response_model=BatchAnswer,
    responses={
        202: {"description": "Every event accepted"},
        207: answer(BatchAnswer, "Some events rejected or not stored: see each result"),
        401: UNAUTHORIZED,
        413: answer(Message, "Body or event count over the limit"),
        415: UNSUPPORTED,
        422: answer(Problems, "The body as a whole is not a JSON array or NDJSON, or is empty"),
        503: answer(BatchAnswer, "Kafka unavailable; nothing stored; resend after Retry-After"),
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
    to_send: list[tuple[_Item, Event]] = []
    oldest = max_age(context)
    for item in items:
        if item.event is None:
            counts["unknown", "rejected_422"] += 1
            continue
        refusal = admit(caller, item.event, oldest)
        if refusal is not None:
            counts[item.event.short_type, f"rejected_{refusal.code}"] += 1
            item.result = {
                "index": item.index,
                "id": item.event.id,
                "status": "rejected",
                "code": refusal.code,
                "errors": [{"loc": ["body", item.index, refusal.field], "msg": refusal.msg, "type": refusal.type}],
            }
        else:
            to_send.append((item, item.event))
    records = [event_record(context.topics, event, caller.backfill) for _, event in to_send]
    outcomes: list[Delivered | BrokerUnavailable]
    try:
        outcomes = await publish(context, "batch", records)
    except BrokerUnavailable as exc:
        # No connection at all: every event fails the same way, answered per item like any other failure.
        outcomes = [exc] * len(records)
    unavailable = 0
    for (item, event), outcome in zip(to_send, outcomes, strict=True):
        if isinstance(outcome, BrokerUnavailable):
            unavailable += 1
            counts[event.short_type, "rejected_503"] += 1
            item.result = {
                "index": item.index,
                "id": event.id,
                "status": "failed",
                "code": 503,
                "retryable": True,
                "errors": [{"loc": ["body", item.index], "msg": str(outcome), "type": "broker_unavailable"}],
            }
        else:
            counts[event.short_type, "accepted"] += 1
            item.result = {
                "index": item.index,
                "id": event.id,
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
