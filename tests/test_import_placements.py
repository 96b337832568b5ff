"""`caresignal directory import-placements`: an authority's aggregated extract, and nothing more."""

import json
from pathlib import Path

import pytest

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.cli import main
from services.ingest.authority_names import load_authority_names
from services.ingest.placements_extract import PersonalDataColumn, read_extract
from tests.conftest import consume_all
from tests.ods_files import write_ods

DATA = Path(__file__).parent / "data" / "placements"


def test_reads_an_extract_with_names_or_codes_for_the_authority() -> None:
    result = read_extract(DATA / "extract.csv", load_authority_names())
    assert not result.problems
    assert [(p.authority, p.location_id, p.people_placed, p.status.value) for p in result.placements] == [
        ("E10000030", "1-101000001", 7, "active"),
        ("E10000030", "1-101000003", 12, "active"),
        ("E10000030", "1-101000004", 0, "ended"),
    ]


def test_refuses_a_personal_column_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "extract_with_personal_column.csv"
    with pytest.raises(PersonalDataColumn, match="'Date of birth' could hold personal data"):
        read_extract(path, load_authority_names())
    assert main(["directory", "import-placements", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "'Date of birth' could hold personal data" in captured.err
    # The refusal names the column, never what is in it.
    assert "1941" not in captured.err + captured.out


@pytest.mark.parametrize(
    "column",
    [
        "Name",
        "Surname",
        "Client name",
        "DOB",
        "date_of_birth",
        "NHS Number",
        "Address",
        "Postcode",
        "Email",
        "Mosaic ID",
    ],
)
def test_personal_columns_are_refused(tmp_path: Path, column: str) -> None:
    path = tmp_path / "extract.csv"
    path.write_text(f"authority,location_id,people_placed,status,{column}\nE10000030,1-101000001,1,active,x\n")
    with pytest.raises(PersonalDataColumn, match=f"{column!r} could hold personal data"):
        read_extract(path, load_authority_names())


def test_any_other_column_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "extract.csv"
    path.write_text("authority,location_id,people_placed,status,weekly cost\nE10000030,1-101000001,1,active,900\n")
    with pytest.raises(PersonalDataColumn, match="unknown column 'weekly cost'"):
        read_extract(path, load_authority_names())


def test_per_person_rows_and_bad_values_are_problems(tmp_path: Path) -> None:
    path = tmp_path / "extract.csv"
    path.write_text(
        "Authority,Location ID,People placed,Status\n"
        "E10000030,1-101000001,1,active\n"
        "E10000030,1-101000001,1,active\n"
        "Atlantis,1-101000002,1,active\n"
        "E10000030,1-101000003,three,active\n"
        "E10000030,1-101000004,2,paused\n"
        "E10000030,Oak House,2,active\n"
    )
    problems = [str(p) for p in read_extract(path, load_authority_names()).problems]
    assert problems[0].startswith("line 3: location id: repeats line 2")
    assert problems[1] == "line 4: authority: 'Atlantis' is not an authority in the ONS code list"
    assert problems[2] == "line 5: people placed: not a whole number"
    assert problems[3] == "line 6: status: 'paused' is not 'active' or 'ended'"
    assert problems[4].startswith("line 7: location id:")


def test_authority_option_fills_and_checks_the_column(tmp_path: Path) -> None:
    path = tmp_path / "extract.csv"
    path.write_text("location_id,people_placed,status\n1-101000001,3,active\n")
    names = load_authority_names()
    [placement] = read_extract(path, names, authority="E06000036").placements
    assert placement.authority == "E06000036"
    other = read_extract(DATA / "extract.csv", names, authority="E06000036")
    assert str(other.problems[0]) == "line 2: authority: E10000030 is not --authority E06000036"


def test_header_below_a_title_in_an_ods(tmp_path: Path) -> None:
    rows = [
        ["Placements at 31 October 2026"],
        [],
        *(line.split(",") for line in (DATA / "extract.csv").read_text().splitlines()),
    ]
    ods = write_ods(tmp_path / "extract.ods", [("Sheet1", rows)])
    assert read_extract(ods, load_authority_names()) == read_extract(DATA / "extract.csv", load_authority_names())


@pytest.mark.integration
def test_import_publishes_placements(
    test_kafka_settings: KafkaSettings, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", test_kafka_settings.topic_prefix)
    assert main(["directory", "import-placements", str(DATA / "extract_with_personal_column.csv")]) == 2
    assert main(["directory", "import-placements", str(DATA / "extract.csv")]) == 0
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.placements, expect=3)
    assert sorted(r.key for r in records) == [
        b"1-101000001/E10000030",
        b"1-101000003/E10000030",
        b"1-101000004/E10000030",
    ]
    assert {json.loads(r.value)["status"] for r in records} == {"active", "ended"}
