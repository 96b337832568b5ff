"""CloudEvents HTTP binding, binary content mode: attributes in `ce-*` headers, the body is `data`.

It is the default of the official SDKs (`to_binary`), so a producer using one must not
have to know about structured mode. The event read here is validated exactly like a
structured one and stored the same way (structured, as the whole event's JSON).
"""

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from services.ingest.errors import InvalidBody, InvalidHeader, UnsupportedMediaType

CE_PREFIX = "ce-"
# CloudEvents' required attributes, then the two CareSignal requires as well.
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject")
DATA_MEDIA_TYPES = ("application/json",)


def is_binary(headers: Mapping[str, str], media_type: str) -> bool:
    """Binary mode: any `ce-` header, unless the body is a structured event (spec 3.1)."""
    if media_type.startswith("application/cloudevents"):
        return False
    return any(name.lower().startswith(CE_PREFIX) for name in headers)


def header_name(attribute: str) -> str:
    return f"{CE_PREFIX}{attribute}"


def event_object(headers: Mapping[str, str], media_type: str, body: bytes) -> dict[str, Any]:
    """The structured form of a binary-mode event, for the ordinary event validation."""
    # Binary mode maps datacontenttype to Content-Type; the SDKs send none when it is unset,
    # and JSON is what every CareSignal event's data is.
    if media_type and media_type not in DATA_MEDIA_TYPES:
        raise UnsupportedMediaType(media_type, DATA_MEDIA_TYPES)
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if not lowered.startswith(CE_PREFIX):
            continue
        attribute = lowered.removeprefix(CE_PREFIX)
        if attribute in ("data", "datacontenttype"):
            raise InvalidHeader(lowered, "in binary mode the body is the data and Content-Type its media type")
        # Header values are percent-encoded (HTTP binding 3.1.3.2).
        attributes[attribute] = unquote(value)
    missing = [header_name(a) for a in REQUIRED_ATTRIBUTES if a not in attributes]
    if missing:
        raise InvalidHeader(missing[0], f"missing header {', '.join(missing)} (CloudEvents binary mode)")
    if not body.strip():
        raise InvalidBody("body", "binary mode: the body is the event's data, a JSON object, and it is empty")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidBody("body", f"binary mode: the body is the event's data and is not JSON: {exc}") from None
    # Content-Type is datacontenttype in binary mode: a charset in it is checked as the
    # structured envelope's would be (JSON is UTF-8), not dropped unread.
    declared = headers.get("content-type", "").strip()
    return {**attributes, "datacontenttype": declared or "application/json", "data": data}


def locate(problem: dict[str, Any]) -> dict[str, Any]:
    """Point a validation problem at the header or the part of the body it is about."""
    loc = problem["loc"]
    if len(loc) < 2 or loc[0] != "body":
        return problem
    if loc[1] == "data":
        return {**problem, "loc": ["body", *loc[2:]]}
    if loc[1] == "datacontenttype":
        return {**problem, "loc": ["header", "content-type"]}
    return {**problem, "loc": ["header", header_name(str(loc[1]))]}
