"""The event and directory contracts (pure: no broker)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from schemas.directory import Location, Placement
from schemas.events import SHORT_NAMES, EventParser
from schemas.examples import EXAMPLE_DATA, example_event
from schemas.jsonschema import drift

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
parser = EventParser()


def errors_of(obj: dict) -> list[tuple[tuple, str]]:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as info:
        parser.parse_obj(obj, now=NOW)
    return [(e["loc"][1:], e["type"]) for e in info.value.errors()]


@pytest.mark.parametrize("short_type", sorted(SHORT_NAMES))
def test_every_type_has_a_valid_example_that_round_trips(short_type: str) -> None:
    obj = example_event(short_type, time=NOW - timedelta(hours=1))
    event = parser.parse_obj(obj, now=NOW)
    assert event.short_type == short_type
    assert parser.parse_json(event.model_dump_json(), now=NOW) == event


def test_examples_cover_every_type() -> None:
    assert (
        set(EXAMPLE_DATA)
        == SHORT_NAMES
        == {
            "complaint",
            "statutory_notification",
            "missed_visit",
            "ccg_flag",
            "police_flag",
            "safeguarding_concern",
            "cqc_rating",
            "cqc_enforcement",
            "contract_monitoring",
            "whistleblowing",
            "workforce",
            "health_use",
            "provider_incident",
            "care_review",
        }
    )


@pytest.mark.parametrize("field", ["name", "date_of_birth", "nhs_number", "notes", "address"])
def test_no_field_can_carry_personal_data(field: str) -> None:
    obj = example_event("complaint", time=NOW)
    obj["data"] = {**obj["data"], field: "Jane Doe"}
    assert errors_of(obj) == [(("data", field), "extra_forbidden")]
    top = example_event("complaint", time=NOW)
    top[field] = "Jane Doe"
    assert errors_of(top) == [((field,), "extra_forbidden")]


@pytest.mark.parametrize(
    "ref", ["Jane Doe", "9434765919", "JaneDoeJaneDoeJaneDoeJaneDoeJane", "ABCDEF0123456789ABCDEF0123456789"]
)
def test_a_pseudonym_must_be_a_hex_digest(ref: str) -> None:
    obj = example_event("safeguarding_concern", time=NOW)
    obj["data"] = {**obj["data"], "person_ref": ref}
    assert errors_of(obj) == [(("data", "person_ref"), "string_pattern_mismatch")]


@pytest.mark.parametrize("location", ["1-12345678", "1-123456789012", "2-123456789", "RXH01", ""])
def test_location_ids_are_checked(location: str) -> None:
    obj = example_event(time=NOW, location_id=location)
    assert errors_of(obj) == [(("subject",), "string_pattern_mismatch")]


def test_times_must_carry_a_zone() -> None:
    obj = example_event(time=NOW)
    obj["time"] = "2026-11-01T10:00:00"
    assert errors_of(obj) == [(("time",), "timezone_aware")]


def test_future_events_are_rejected_beyond_the_tolerance() -> None:
    assert parser.parse_obj(example_event(time=NOW + timedelta(minutes=4)), now=NOW)
    [(loc, kind)] = errors_of(example_event(time=NOW + timedelta(minutes=6)))
    assert loc == ("time",) and kind == "value_error"


def test_a_time_before_year_one_in_utc_is_refused() -> None:
    obj = example_event(time=NOW)
    obj["time"] = "0001-01-01T00:00:00+14:00"
    assert errors_of(obj) == [(("time",), "value_error")]


def test_unknown_type_names_the_type_field() -> None:
    obj = example_event(time=NOW)
    obj["type"] = "uk.caresignal.gossip.v1"
    with pytest.raises(ValidationError) as info:
        parser.parse_obj(obj, now=NOW)
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_type_names_carry_a_version() -> None:
    assert example_event("complaint")["type"] == "uk.caresignal.complaint.v1"


@pytest.mark.parametrize(
    ("short_type", "data", "field"),
    [
        ("complaint", {"category": "care", "severity": "extreme"}, ("data", "severity")),
        ("missed_visit", {"outcome": "late", "time_critical": False}, ("data",)),
        ("missed_visit", {"outcome": "missed", "minutes_late": 5, "time_critical": False}, ("data",)),
        ("workforce", {}, ("data",)),
        ("workforce", {"agency_staff_share": 1.5}, ("data", "agency_staff_share")),
        ("health_use", {"kind": "missed_gp_appointment", "injury_type": "fall"}, ("data",)),
        ("contract_monitoring", {"finding_level": "low", "key_questions": ["safe", "safe"]}, ("data", "key_questions")),
        (
            "ccg_flag",
            {"concern": "medication", "severity": "low", "commissioner": "W11000028"},
            ("data", "commissioner"),
        ),
        ("police_flag", {"kind": "criminal_proceedings"}, ("data", "care_related")),
        ("provider_incident", {"category": "medication_error"}, ("data", "harm")),
        ("provider_incident", {"category": "medication", "harm": "low"}, ("data", "category")),
        ("provider_incident", {"category": "fall", "harm": "catastrophic"}, ("data", "harm")),
        ("care_review", {"finding_level": "none", "key_questions": ["safe"]}, ("data",)),
        ("care_review", {"finding_level": "low", "key_questions": ["safe", "safe"]}, ("data", "key_questions")),
    ],
)
def test_type_specific_rules(short_type: str, data: dict, field: tuple) -> None:  # type: ignore[type-arg]
    locs = [loc for loc, _ in errors_of(example_event(short_type, time=NOW, data=data))]
    assert field in locs


@pytest.mark.parametrize(
    ("short_type", "field", "value"),
    [
        ("safeguarding_concern", "serious", "yes"),
        ("safeguarding_concern", "linked_death", 0),
        ("statutory_notification", "linked_to_safeguarding", "false"),
        ("missed_visit", "time_critical", 1),
        ("missed_visit", "minutes_late", "95"),
        ("police_flag", "care_related", "true"),
        ("workforce", "vacancy_rate", "0.1"),
        ("workforce", "registered_manager_left", "n"),
        ("health_use", "repeat_injury", 0),
        ("cqc_rating", "published", 1_699_920_000),
        ("provider_incident", "harm", 1),
        ("care_review", "finding_level", None),
    ],
)
def test_data_fields_take_only_their_own_json_type(short_type: str, field: str, value: object) -> None:
    obj = example_event(short_type, time=NOW)
    obj["data"] = {**obj["data"], field: value}
    assert [loc for loc, _ in errors_of(obj)] == [("data", field)]
    with pytest.raises(ValidationError) as info:
        parser.parse_json(json.dumps(obj), now=NOW)
    assert [e["loc"][1:] for e in info.value.errors()] == [("data", field)]


def test_strict_types_keep_iso_dates_and_integers_as_numbers() -> None:
    rating = example_event("cqc_rating", time=NOW)
    assert parser.parse_json(json.dumps(rating), now=NOW).data.published.isoformat() == "2026-10-01"  # type: ignore[union-attr]
    share = example_event("workforce", time=NOW, data={"agency_staff_share": 1})
    assert parser.parse_obj(share, now=NOW).data.agency_staff_share == 1.0  # type: ignore[union-attr]
    for seconds in (1_700_000_000, "1700000000", "1700000000.5"):
        timestamp = {**example_event(time=NOW), "time": seconds}
        assert [loc for loc, _ in errors_of(timestamp)] == [("time",)], seconds
    days = example_event("cqc_rating", time=NOW)
    days["data"] = {**days["data"], "published": "20260101"}
    assert [loc for loc, _ in errors_of(days)] == [("data", "published")]


def test_envelope_rejects_wrong_specversion_and_content_type() -> None:
    obj = example_event(time=NOW)
    obj["specversion"] = "0.3"
    obj["datacontenttype"] = "text/plain"
    assert {loc for loc, _ in errors_of(obj)} == {("specversion",), ("datacontenttype",)}


def test_directory_records() -> None:
    location = Location(
        location_id="1-101234567",
        provider_id="1-000111222",
        service_type="care_home",
        capacity=40,
        host_authority="E10000030",
    )
    assert location.key == "1-101234567"
    placement = Placement(authority="E06000036", location_id="1-101234567", people_placed=3, status="active")
    assert placement.key == "1-101234567/E06000036"
    with pytest.raises(ValidationError):
        Location(
            location_id="1-101234567",
            provider_id="1-000111222",
            service_type="care_home",
            capacity=0,
            host_authority="E10000030",
        )
    with pytest.raises(ValidationError):
        Placement(authority="X", location_id="1-101234567", people_placed=1, status="active")


def test_json_schema_files_match_the_models() -> None:
    stale = drift()
    assert stale == [], f"run `caresignal schemas export`: {stale}"


@pytest.mark.parametrize("short_type", ["provider_incident", "care_review"])
@pytest.mark.parametrize("field", ["description", "notes", "name", "nhs_number"])
def test_the_new_signals_carry_no_free_text(short_type: str, field: str) -> None:
    obj = example_event(short_type, time=NOW)
    obj["data"] = {**obj["data"], field: "Mrs Smith was given the wrong tablets"}
    assert errors_of(obj) == [(("data", field), "extra_forbidden")]


def test_the_new_signals_are_versioned_types_with_an_optional_pseudonym() -> None:
    for short_type, data in (
        ("provider_incident", {"category": "medication_error", "harm": "none"}),
        ("care_review", {"finding_level": "none"}),
    ):
        event = parser.parse_obj(example_event(short_type, time=NOW, data=data), now=NOW)
        assert event.type == f"uk.caresignal.{short_type}.v1"
        assert event.data.person_ref is None  # type: ignore[union-attr]
