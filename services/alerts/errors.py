"""The alert API's error answers: one shape per kind, and which routes give which.

A 422 is always FastAPI's validation shape (`detail` is a list naming each field and the
reason), including the checks a route makes itself; every other 4xx is `{"detail": "..."}`.
The OpenAPI document declares them per route, so clients (and schemathesis) can rely on it.
"""

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel


class Problem(BaseModel):
    """Why a request was refused, in words."""

    detail: str


_MEANING = {
    400: "The body is not JSON that can be parsed",
    401: "No API key, or an unknown one",
    403: "The key may not do this (an authority key: another authority's data, or an operator route)",
    404: "Not found, or not visible to this key",
}


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the 4xx answers it gives besides 422."""
    return {code: {"model": Problem, "description": _MEANING[code]} for code in codes}


def invalid(loc: Sequence[str | int], message: str, kind: str = "value_error") -> RequestValidationError:
    """A route's own check, answered in the same shape as a failed validation."""
    return RequestValidationError([{"type": kind, "loc": tuple(loc), "msg": message, "input": None}])
