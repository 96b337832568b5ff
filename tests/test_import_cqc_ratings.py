"""`caresignal directory import-cqc-ratings`: the regulator's latest ratings into cqc_rating events."""

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from schemas.events import EventParser
from schemas.topics import BACKFILL_HEADER, Topics
from services.broker.settings import KafkaSettings
from services.cli import main
from services.ingest.admission import CLOUDEVENTS_CONTENT_TYPE
from services.ingest.cqc_ratings import SERVICE_LEVEL, SOURCE, RatingsImport, parse_date, rating_records, read_ratings
from services.scoring.routing import partition_of
from tests import cqc_layouts as layouts
from tests.conftest import consume_all
from tests.ods_files import write_ods
from tests.xlsx_files import write_xlsx

RATINGS = Path(__file__).parent / "data" / "cqc" / "Latest_ratings.csv"
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def _import(path: Path = RATINGS) -> RatingsImport:
    return read_ratings(path, now=NOW)


def test_one_event_per_location_with_its_key_questions() -> None:
    result = _import()
    assert not result.problems
    by_location = {e.subject: e for e in result.events}
    assert sorted(by_location) == ["1-101000001", "1-101000002"]
    oak = by_location["1-101000001"]
    assert oak.id == "cqc-rating-1-101000001-2024-03-12"
    assert oak.source == SOURCE == "urn:caresignal:source:cqc-ratings"
    # Dated by the Overall row: the key questions not re-rated keep their older date in the file.
    assert oak.data.published == date(2024, 3, 12) and oak.time == datetime(2024, 3, 12, tzinfo=UTC)
    assert oak.data.overall == "good"
    assert oak.data.key_questions.model_dump(mode="json") == {
        "safe": "requires_improvement",
        "effective": "good",
        "caring": "good",
        "responsive": "good",
        "well_led": "requires_improvement",
    }
    assert by_location["1-101000002"].data.overall == "inadequate"
    assert result.not_rated == 1  # "Insufficient evidence to rate" overall
    assert result.skipped == {
        "of Location Type 'NHS Healthcare Organisation'": 2,  # the hospital's rows
        SERVICE_LEVEL: 1,  # a service's rating, not the location's
    }
    # What ingest would accept from a producer: the events are valid contract events.
    parser = EventParser()
    for event in result.events:
        assert parser.parse_json(event.model_dump_json(), now=NOW) == event


def test_reimport_gives_the_same_ids() -> None:
    first = [(e.id, e.model_dump_json()) for e in _import().events]
    assert first == [(e.id, e.model_dump_json()) for e in _import().events]


def test_header_moved_and_named_key_question(tmp_path: Path) -> None:
    rows = list(csv.reader(RATINGS.open(newline="", encoding="utf-8")))
    header_at = next(i for i, r in enumerate(rows) if r and r[0] == "Location ID")
    rows[header_at] = ["Key Question" if h == "Domain" else h for h in rows[header_at]]
    moved = tmp_path / "moved.csv"
    with moved.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows[header_at:])
    assert [e.id for e in _import(moved).events] == [e.id for e in _import().events]


def test_ods_reads_dates_from_date_cells(tmp_path: Path) -> None:
    rows = list(csv.reader(RATINGS.open(newline="", encoding="utf-8")))
    ods = write_ods(tmp_path / "ratings.ods", [("Locations", rows)])
    assert [e.model_dump_json() for e in _import(ods).events] == [e.model_dump_json() for e in _import().events]


def test_unknown_rating_words_and_dates_are_problems(tmp_path: Path) -> None:
    text = RATINGS.read_text(encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(text.replace("Inadequate,20/10/2026", "Dreadful,20/10/2026").replace("12/03/2024", "March 2024"))
    problems = [str(p) for p in _import(bad).problems]
    assert "line 14: Latest Rating: unknown rating 'Dreadful'" in problems
    assert any(p.startswith("line 8: Publication Date:") for p in problems)


def test_parse_date_forms() -> None:
    assert parse_date("2024-03-12") == parse_date("12/03/2024") == parse_date("12 March 2024") == date(2024, 3, 12)
    assert parse_date("2024-03-12T00:00:00") == date(2024, 3, 12)
    with pytest.raises(ValueError):
        parse_date("03/2024")


def test_old_ratings_are_marked_backfill() -> None:
    records = rating_records(_import().events, Topics(), timedelta(days=400), now=NOW)
    by_key = {r.key: dict(r.headers) for r in records}
    assert by_key[b"1-101000001"][BACKFILL_HEADER] == b"1"  # 2024-03-12: more than 400 days before NOW
    assert BACKFILL_HEADER not in by_key[b"1-101000002"]  # 2026-10-20
    assert all(h["content-type"] == CLOUDEVENTS_CONTENT_TYPE for h in by_key.values())


@pytest.mark.integration
def test_import_publishes_events_like_ingest_and_reimport_is_idempotent(
    test_kafka_settings: KafkaSettings,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", test_kafka_settings.topic_prefix)
    assert main(["directory", "import-cqc-ratings", str(RATINGS)]) == 0
    assert main(["directory", "import-cqc-ratings", str(RATINGS)]) == 0
    assert "imported 2 cqc_rating events" in capsys.readouterr().out
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.events, expect=4)
    assert len(records) == 4
    events = [json.loads(r.value) for r in records]
    ids = sorted(e["id"] for e in events)
    assert ids == sorted(["cqc-rating-1-101000001-2024-03-12", "cqc-rating-1-101000002-2026-10-20"] * 2)
    now = datetime.now(UTC)
    for record, event in zip(records, events, strict=True):
        headers = dict(record.headers)
        assert headers["content-type"] == CLOUDEVENTS_CONTENT_TYPE
        assert record.key == event["subject"].encode()
        assert record.partition == partition_of(record.key)
        old = datetime.fromisoformat(event["time"]) < now - timedelta(days=400)
        assert (headers.get(BACKFILL_HEADER) == b"1") is old
        assert event["type"] == "uk.caresignal.cqc_rating.v1"


def _published_rows(header: list[str]) -> list[list[str]]:
    """Rows of the real ratings file's Locations sheet: every sector is in it."""
    question = "Domain" if "Domain" in header else "Key Question"
    social = {"Location Type": "Social Care Org", "Location Primary Inspection Category": "Residential social care"}
    rows: list[dict[str, str]] = []

    def rated(location: str, kind: dict[str, str], group: str, ratings: list[tuple[str, str]], when: str) -> None:
        for key_question, rating in ratings:
            rows.append(
                {
                    "Location ID": location,
                    **kind,
                    "Service / Population Group": group,
                    question: key_question,
                    "Latest Rating": rating,
                    "Publication Date": when,
                    "Provider ID": "1-000000301" if location.startswith("1-") else location[:3],
                }
            )

    five = [("Safe", "Good"), ("Effective", "Good"), ("Caring", "Outstanding"), ("Responsive", "Good")]
    rated(
        "1-301000001",
        social,
        "Overall",
        [("Overall", "Good"), *five, ("Well-led", "Requires improvement")],
        "14/08/2026",
    )
    # An NHS hospital site (not a CQC `1-` ID), its service-level rows too; a GP practice; a dentist.
    nhs = {"Location Type": "NHS Healthcare Organisation", "Location Primary Inspection Category": "Acute hospital"}
    rated("RXQ02", nhs, "Overall", [("Overall", "Requires improvement"), ("Safe", "Inadequate")], "02/02/2024")
    rated("RXQ02", nhs, "Medical care (including older people's care)", [("Overall", "Good")], "02/02/2024")
    gp = {"Location Type": "Primary Medical Services", "Location Primary Inspection Category": "GP Practices"}
    rated("1-301000003", gp, "Overall", [("Overall", "Good"), ("Safe", "Good")], "05/05/2023")
    rated("1-301000003", gp, "Older people", [("Overall", "Good")], "05/05/2023")
    dental = {"Location Type": "Primary Dental Care", "Location Primary Inspection Category": "Dentists"}
    rated("1-301000004", dental, "Overall", [("Overall", "Good")], "06/06/2022")
    return layouts.table(header, rows)


@pytest.mark.parametrize("layout", ["RATINGS_2026", "RATINGS_KEY_QUESTION"])
@pytest.mark.parametrize("kind", ["csv", "ods", "xlsx"])
def test_the_published_file_imports_social_care_and_counts_the_rest(
    tmp_path: Path, layout: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [["Care Quality Commission: latest ratings (test fixture)"], *_published_rows(getattr(layouts, layout))]
    sheets = [("Providers", [["Provider ID", "Provider Name"]]), ("Locations", rows)]
    path = {
        "csv": lambda: layouts.write_csv(tmp_path / "ratings.csv", rows),
        "ods": lambda: write_ods(tmp_path / "ratings.ods", sheets),
        "xlsx": lambda: write_xlsx(tmp_path / "ratings.xlsx", sheets),
    }[kind]()
    assert main(["directory", "import-cqc-ratings", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 rating events" in out
    assert "skipped rows: " in out
    for count, kind in [
        (3, "NHS Healthcare Organisation"),
        (3, "Primary Medical Services"),
        (1, "Primary Dental Care"),
    ]:
        assert f"{count} of Location Type {kind!r}" in out
    result = _import(path)
    (event,) = result.events
    assert (event.subject, event.data.overall, event.data.published) == ("1-301000001", "good", date(2026, 8, 14))
    assert event.data.key_questions.model_dump(mode="json")["well_led"] == "requires_improvement"


def test_a_non_cqc_id_in_a_file_without_a_sector_column_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "bare.csv"
    path.write_text(
        "Location ID,Key Question,Latest Rating,Publication Date,Location Type\n"
        "RXQ02,Overall,Good,01/02/2024,\n"
        "1-301000001,Overall,Good,01/02/2024,Social Care Org\n"
    )
    result = _import(path)
    assert [e.subject for e in result.events] == ["1-301000001"]
    assert result.skipped == {"not a CQC location ID (NHS sites have their own)": 1}
