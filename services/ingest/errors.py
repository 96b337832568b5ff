"""Typed errors and their HTTP answers.

Validation errors never echo the submitted value back: a rejected field may be exactly
the personal data that must not travel (a name typed into the wrong field).
"""

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from schemas.events import TYPE_PREFIX
from services.ingest.limits import PayloadTooLarge
from services.ingest.publisher import BrokerUnavailable


class UnsupportedMediaType(Exception):
    def __init__(self, got: str, allowed: Sequence[str]) -> None:
        super().__init__(f"content type {got or '(none)'!r} is not one of {list(allowed)}")


class BatchTooLarge(Exception):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"batch has {count} events; the limit is {limit}")


class InvalidBody(Exception):
    """The body as a whole cannot be read (not a JSON array, empty batch...)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class InvalidHeader(Exception):
    """A request header is missing or wrong (CloudEvents binary mode's `ce-*`)."""

    def __init__(self, header: str, reason: str) -> None:
        super().__init__(reason)
        self.header = header
        self.reason = reason


def problems(errors: Sequence[Any], prefix: tuple[str | int, ...] = ("body",)) -> list[dict[str, Any]]:
    """Pydantic errors as `{loc, msg, type}` without the input value."""
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        # The discriminated union puts the event type first in `loc`; callers know it.
        if loc and isinstance(loc[0], str) and loc[0].startswith(TYPE_PREFIX):
            loc = loc[1:]
        if not loc and str(err.get("type", "")).startswith("union_tag"):
            loc = ["type"]
        out.append({"loc": [*prefix, *loc], "msg": err.get("msg", ""), "type": err.get("type", "")})
    return out


def unprocessable(details: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": details})


def install_handlers(app: FastAPI, retry_after_s: int) -> None:
    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        return unprocessable(problems(exc.errors(include_input=False, include_url=False)))

    async def on_request_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return unprocessable(problems(exc.errors(), prefix=()))

    async def on_invalid_body(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidBody)
        loc = ["body"] if exc.field == "body" else ["body", exc.field]
        return unprocessable([{"loc": loc, "msg": exc.reason, "type": "invalid_body"}])

    async def on_invalid_header(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidHeader)
        return unprocessable([{"loc": ["header", exc.header], "msg": exc.reason, "type": "invalid_header"}])

    async def on_too_large(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=413, content={"detail": str(exc)})

    async def on_media_type(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=415, content={"detail": str(exc)})

    async def on_unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": f"{exc}; nothing was stored, resend with the same event id"},
            headers={"Retry-After": str(retry_after_s)},
        )

    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(InvalidBody, on_invalid_body)
    app.add_exception_handler(InvalidHeader, on_invalid_header)
    app.add_exception_handler(PayloadTooLarge, on_too_large)
    app.add_exception_handler(BatchTooLarge, on_too_large)
    app.add_exception_handler(UnsupportedMediaType, on_media_type)
    app.add_exception_handler(BrokerUnavailable, on_unavailable)

    async def on_client_gone(_: Request, exc: Exception) -> Response:
        # The caller hung up before sending its whole body: nothing was parsed or
        # stored, and nobody is listening for an answer.
        return Response(status_code=499)

    app.add_exception_handler(ClientDisconnect, on_client_gone)
