"""The CNCF CloudEvents conformance suite's HTTP protocol binding cases against ingest.

The cases (tests/data/cloudevents/conformance-http.yaml, transcribed from
cloudevents/conformance, Apache-2.0) are sent as the suite's tool sends them: binary and
structured content mode, `application/json` and `application/cloudevents+json`, with and
without a charset parameter. Each is accepted, or refused with a 4xx that names why where
CareSignal's contract is stricter than CloudEvents (README, "Events"): its `type`
vocabulary, `subject` required, `source` bound to the key, typed `data`, no extension
attributes, JSON data only, and the age limit. The same requests in CareSignal's
vocabulary, each transport detail kept, are accepted and stored alike.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from schemas.examples import EXAMPLE_DATA
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from tests import test_ingest_cloudevents
from tests.conftest import consume_all
from tests.test_ingest_cloudevents import SOURCE, attributes, post

pytestmark = pytest.mark.integration
# The SDK tests' ingest client fixture (the app with the test keys on this test's topics).
client = test_ingest_cloudevents.client

CASES_FILE = Path(__file__).parent / "data" / "cloudevents" / "conformance-http.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))["cases"]
BY_NAME = {case["case"]: case for case in CASES}
# The attributes the suite's tool sends itself; any other `ce-` header, or envelope member
# besides `data`, is an extension attribute.
ATTRIBUTES = ("specversion", "type", "time", "id", "source", "subject", "datacontenttype")
STRUCTURED = "application/cloudevents+json; charset=UTF-8"  # the tool's structured Content-Type
MISSING_SUBJECT = (422, ("header", "ce-subject"), "missing header ce-subject")
FOREIGN_TYPE = (422, ("body", "type"), "'com.example.someevent'")
MISSING_TIME_AND_SUBJECT = (422, ("header", "ce-time"), "missing header ce-time, ce-subject")

# What ingest answers each case as sent: (status, where the first problem is, what it says).
AS_SENT: dict[str, tuple[int, tuple[str, ...], str]] = {
    # No `subject`: CloudEvents makes it optional, CareSignal keys every event by the
    # location it is about.
    "feature-binary-application-json": MISSING_SUBJECT,
    "feature-binary-application-json-charset-utf-8": MISSING_SUBJECT,
    "v1-binary-extensions": MISSING_SUBJECT,
    # Structured mode is read as one typed event: the type picks the model first.
    "feature-structured-cloudevents-json": FOREIGN_TYPE,
    "feature-structured-cloudevents-json-charset-utf-8": FOREIGN_TYPE,
    "v1-structured-extensions": FOREIGN_TYPE,
    # `time` is optional in CloudEvents; CareSignal scores by event time.
    "v1-minimum-0003-json-string": MISSING_TIME_AND_SUBJECT,
    "v1-minimum-0004-json-object": MISSING_TIME_AND_SUBJECT,
    "v1-minimum-0005-json-array": MISSING_TIME_AND_SUBJECT,
    # Every CareSignal event's data is a JSON object.
    "v1-minimum-0001-text-plain-us-ascii": (415, (), "'text/plain'"),
    "v1-minimum-0002-text-plain-utf-8": (415, (), "'text/plain'"),
    "v1-minimum-0006-xml": (415, (), "'application/xml'"),
}


def send(http: TestClient, case: dict[str, Any]) -> Any:
    return post(http, case["headers"], case["body"].encode("utf-8"))


def extension_headers(case: dict[str, Any]) -> list[str]:
    return [h for h in case["headers"] if h.lower().startswith("ce-") and h.lower()[3:] not in ATTRIBUTES]


def ours(case: dict[str, Any], event_id: str, location: str, keep_extensions: bool = False) -> dict[str, Any]:
    """The case in CareSignal's vocabulary: its mode, Content-Type (with any charset) and
    other headers kept; type, source, id, time, subject and data ours."""
    mine = attributes("missed_visit", event_id, location)
    data = EXAMPLE_DATA["missed_visit"]
    if case["mode"] == "binary":
        drop = set() if keep_extensions else set(extension_headers(case))
        headers = {k: v for k, v in case["headers"].items() if k not in drop and k.lower()[3:] not in mine}
        return {**case, "headers": {**headers, **{f"ce-{k}": v for k, v in mine.items()}}, "body": json.dumps(data)}
    envelope = json.loads(case["body"])
    kept = {k: v for k, v in envelope.items() if k in ATTRIBUTES or (keep_extensions and k != "data")}
    return {**case, "body": json.dumps({**kept, **mine, "data": data})}


def as_structured(case: dict[str, Any]) -> dict[str, Any]:
    """A binary case in the suite's other content mode, as its tool would send it: the
    Content-Type becomes the envelope's `datacontenttype`, the body its `data`."""
    headers = dict(case["headers"])
    envelope = {h.lower()[3:]: headers.pop(h) for h in list(headers) if h.lower().startswith("ce-")}
    content_type = next((headers.pop(h) for h in list(headers) if h.lower() == "content-type"), None)
    if content_type is not None:
        envelope["datacontenttype"] = content_type
    envelope["data"] = json.loads(case["body"])
    return {
        **case,
        "mode": "structured",
        "headers": {**headers, "Content-Type": STRUCTURED},
        "body": json.dumps(envelope),
    }


def test_the_transcription_holds_every_case_of_the_suite() -> None:
    assert set(BY_NAME) == set(AS_SENT)
    modes = {(c["mode"], c["headers"].get("Content-Type")) for c in CASES}
    assert ("binary", "application/json; charset=utf-8") in modes
    assert ("structured", "application/cloudevents+json; charset=utf-8") in modes
    assert ("structured", "application/cloudevents+json; charset=UTF-8") in modes
    # The scenario outlines give the Content-Length of their requests.
    assert len(BY_NAME["feature-binary-application-json"]["body"].encode()) == 33
    assert len(BY_NAME["feature-structured-cloudevents-json"]["body"].encode()) == 266


@pytest.mark.parametrize("name", list(AS_SENT))
def test_each_case_as_sent_is_refused_with_a_4xx_naming_why(name: str, client: TestClient) -> None:
    status, loc, says = AS_SENT[name]
    response = send(client, BY_NAME[name])
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if status == 415:
        assert says in detail
        return
    assert tuple(detail[0]["loc"]) == loc and says in detail[0]["msg"], detail


def test_each_json_case_in_our_vocabulary_is_accepted_in_both_modes_and_stored_alike(
    client: TestClient, topics: Topics, kafka_settings: KafkaSettings
) -> None:
    sent: dict[str, dict[str, Any]] = {}
    for n, case in enumerate(c for c in CASES if AS_SENT[c["case"]][0] != 415):
        variants = [ours(case, f"conf-{n}", f"1-2000000{n:02d}")]
        if case["mode"] == "binary":
            # The suite sends v1.yaml's event in both modes; the others are binary only.
            variants.append(as_structured(ours(case, f"conf-{n}-s", f"1-2000001{n:02d}")))
        for variant in variants:
            response = send(client, variant)
            assert response.status_code == 202, (case["case"], variant["mode"], response.text)
            sent[response.json()["id"]] = variant
    records = consume_all(kafka_settings.bootstrap_servers, topics.events, len(sent))
    stored = {json.loads(r.value)["id"]: json.loads(r.value) for r in records}
    assert set(stored) == set(sent)
    for event in stored.values():
        # Whatever charset the producer named, the stored event says JSON, as binary mode's.
        assert event["datacontenttype"] == "application/json" and event["source"] == SOURCE
    charsets = {v["headers"].get("Content-Type") for v in sent.values()}
    assert {"application/json; charset=utf-8", "application/cloudevents+json; charset=UTF-8"} <= charsets
    declared = {json.loads(v["body"]).get("datacontenttype") for v in sent.values() if v["mode"] == "structured"}
    assert "application/json; charset=utf-8" in declared  # a 422 until these cases found it


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_where_our_contract_is_stricter_each_difference_is_named(mode: str, client: TestClient) -> None:
    base = BY_NAME["v1-binary-extensions" if mode == "binary" else "v1-structured-extensions"]
    suite = BY_NAME["feature-binary-application-json"]["headers"]

    def answer(
        change: dict[str, Any] | None = None,
        data: Any = None,
        content_type: str | None = None,
        keep_extensions: bool = False,
    ) -> tuple[int, Any]:
        case = ours(base, "strict-1", "1-200000999", keep_extensions)
        envelope = json.loads(case["body"]) if mode == "structured" else {}
        if mode == "binary":
            case["headers"] = {**case["headers"], **{f"ce-{k}": v for k, v in (change or {}).items()}}
            if content_type is not None:
                case["headers"]["Content-Type"] = content_type
            if data is not None:
                case["body"] = json.dumps(data)
        else:
            envelope.update(change or {})
            if content_type is not None:
                envelope["datacontenttype"] = content_type
            if data is not None:
                envelope["data"] = data
            case["body"] = json.dumps(envelope)
        response = send(client, case)
        if response.status_code == 202:
            return 202, None
        detail = response.json()["detail"]
        return response.status_code, detail if response.status_code == 403 else [tuple(p["loc"]) for p in detail]

    def at(attribute: str) -> tuple[str, ...]:
        return ("header", f"ce-{attribute}") if mode == "binary" else ("body", attribute)

    in_data = ("body",) if mode == "binary" else ("body", "data")
    # The base case is valid: each refusal below is its one change.
    assert answer() == (202, None)
    # The suite's own values, one at a time, in an otherwise valid CareSignal event.
    assert answer({"type": suite["ce-type"]}) == (422, [at("type")])
    assert answer({"time": suite["ce-time"]}) == (422, [at("time")])  # beyond the age limit
    status, says = answer({"source": suite["ce-source"]})
    assert status == 403 and "does not match the API key's source" in says
    status, where = answer(data={"world": "hello"})
    assert status == 422 and (*in_data, "world") in where and (*in_data, "outcome") in where
    # Extension attributes are unknown fields: each is refused, never dropped.
    assert answer(keep_extensions=True) == (422, [at("comexampleextension1"), at("comexampleextension2")])
    # JSON is UTF-8 (RFC 8259): another charset is named, not guessed at.
    other_charset = ("header", "content-type") if mode == "binary" else at("datacontenttype")
    assert answer(content_type="application/json; charset=iso-8859-1") == (422, [other_charset])
