"""Directory endpoints: locations, placements and authorities, to compacted topics."""

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from schemas.directory import Authority, Location, Placement
from schemas.identifiers import CQC_ID_PATTERN, ONS_CODE_PATTERN
from services.ingest.answers import TOO_LARGE, UNAUTHORIZED, UNAVAILABLE, UNSUPPORTED, Message, Problems, Stored, answer
from services.ingest.auth import CallerDep
from services.ingest.context import IngestContext, IngestDep
from services.ingest.errors import problems, unprocessable
from services.ingest.events import SINGLE_MEDIA_TYPES, media_type
from services.ingest.publisher import BrokerUnavailable, OutRecord

router = APIRouter(tags=["directory"])

LocationPath = Annotated[str, Path(pattern=CQC_ID_PATTERN, description="CQC location ID")]
OnsPath = Annotated[str, Path(pattern=ONS_CODE_PATTERN, description="ONS code of the authority")]

R = TypeVar("R", Location, Placement, Authority)

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: answer(Stored, "Stored: Kafka acknowledged the record"),
    401: UNAUTHORIZED,
    403: answer(Message, "This key may not write directory data"),
    413: TOO_LARGE,
    415: UNSUPPORTED,
    422: answer(Problems, "Invalid record, or the path does not match the body"),
    503: UNAVAILABLE,
}


async def store(
    request: Request,
    caller_may_write: bool,
    context: IngestContext,
    model: type[R],
    topic: str,
    expected: dict[str, str],
) -> JSONResponse:
    kind = model.__name__.lower()
    if not caller_may_write:
        context.metrics.directory_records.labels(kind, "rejected_403").inc()
        return JSONResponse(status_code=403, content={"detail": "this API key may not write directory data"})
    media_type(request, SINGLE_MEDIA_TYPES)
    try:
        record = model.model_validate_json(await request.body())
    except ValidationError as exc:
        context.metrics.directory_records.labels(kind, "rejected_422").inc()
        return unprocessable(problems(exc.errors(include_input=False, include_url=False)))
    mismatched = [
        {"loc": ["body", field], "msg": f"must equal the path's {field} {value!r}", "type": "path_mismatch"}
        for field, value in expected.items()
        if getattr(record, field) != value
    ]
    if mismatched:
        context.metrics.directory_records.labels(kind, "rejected_422").inc()
        return unprocessable(mismatched)
    (outcome,) = await context.publisher.publish(
        [OutRecord(topic=topic, key=record.key.encode(), value=record.model_dump_json().encode())]
    )
    if isinstance(outcome, BrokerUnavailable):
        context.metrics.directory_records.labels(kind, "rejected_503").inc()
        raise outcome
    context.metrics.directory_records.labels(kind, "stored").inc()
    return JSONResponse(
        status_code=200, content={"status": "stored", "key": record.key, "record": record.model_dump(mode="json")}
    )


def _body(model: type[BaseModel]) -> dict[str, object]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


@router.put(
    "/v1/locations/{location_id}",
    responses=RESPONSES,
    openapi_extra=_body(Location),
    summary="Create or replace a location",
)
async def put_location(
    location_id: LocationPath, request: Request, caller: CallerDep, context: IngestDep
) -> JSONResponse:
    return await store(
        request, caller.directory, context, Location, context.topics.locations, {"location_id": location_id}
    )


@router.put(
    "/v1/placements/{authority}/{location_id}",
    responses=RESPONSES,
    openapi_extra=_body(Placement),
    summary="Create or replace an authority's placements at a location (status ended to end them)",
)
async def put_placement(
    authority: OnsPath, location_id: LocationPath, request: Request, caller: CallerDep, context: IngestDep
) -> JSONResponse:
    return await store(
        request,
        caller.directory,
        context,
        Placement,
        context.topics.placements,
        {"authority": authority, "location_id": location_id},
    )


@router.put(
    "/v1/authorities/{ons_code}",
    responses=RESPONSES,
    openapi_extra=_body(Authority),
    summary="Create or replace an authority",
)
async def put_authority(ons_code: OnsPath, request: Request, caller: CallerDep, context: IngestDep) -> JSONResponse:
    return await store(
        request, caller.directory, context, Authority, context.topics.authorities, {"ons_code": ons_code}
    )
