"""`caresignal directory import-cqc`: the regulator's care directory into Location records."""

import csv
import json
import logging
from pathlib import Path

import pytest

from schemas.directory import ServiceType
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.cli import main
from services.ingest.authority_names import load_authority_names
from services.ingest.cqc_directory import read_directory
from services.ingest.directory_import import DirectoryImportError
from services.ingest.spreadsheet import SpreadsheetError
from tests.conftest import consume_all
from tests.ods_files import write_ods

DATA = Path(__file__).parent / "data" / "cqc"
HSCA = DATA / "HSCA_Active_Locations.csv"
# What the fixture's personal and address columns hold: none may come out anywhere.
MANAGERS = ["Harriet Quillfeather", "Bartholomew Zeffirelli", "Philippa Onderdonk", "Leopoldina Fairweather"]
NOMINATED = ["Octavia Brackenbury", "Rufus Pemberton-Ashe", "Clementine Duquesne", "Seraphina Coldwell"]
NEVER_OUT = [*MANAGERS, *NOMINATED, "Quillfeather", "GU1 1AA", "BS1 2BB", "SW3 3CC", "01483 100001", "1 Oak Lane"]


def _rows() -> list[list[str]]:
    with HSCA.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _header_at(tmp_path: Path, blank_rows: int) -> Path:
    """The fixture with its header moved: `blank_rows` rows of title and notes above it."""
    rows = _rows()
    header_index = next(i for i, r in enumerate(rows) if r and r[0] == "Location ID")
    above = [["Notes"]] + [[f"note {i}"] for i in range(blank_rows - 1)] if blank_rows else []
    path = tmp_path / f"moved{blank_rows}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(above + rows[header_index:])
    return path


def _ods(tmp_path: Path) -> Path:
    notes = [["About this file"], ["Published monthly by the regulator (test fixture)"]]
    return write_ods(tmp_path / "HSCA_Active_Locations.ods", [("Notes", notes), ("HSCA_Active_Locations", _rows())])


def test_maps_kept_locations_and_reports_what_was_left_out() -> None:
    result = read_directory(HSCA, load_authority_names(), default_capacity=1)
    by_id = {loc.location_id: loc for loc in result.locations}
    assert sorted(by_id) == ["1-101000001", "1-101000002", "1-101000003", "1-101000004", "1-101000009"]
    oak = by_id["1-101000001"]
    # Nursing wins over without-nursing; beds are the capacity.
    assert (oak.service_type, oak.capacity, oak.host_authority, oak.provider_id) == (
        ServiceType.nursing_home,
        60,
        "E10000030",
        "1-000000101",
    )
    assert by_id["1-101000002"].host_authority == "E06000023"  # "Bristol, City of"
    assert by_id["1-101000002"].name == "St Mary's Court"  # curly apostrophe made plain, kept
    assert by_id["1-101000003"].host_authority == "E09000020"  # "Kensington & Chelsea"
    assert by_id["1-101000003"].service_type is ServiceType.home_care
    assert by_id["1-101000004"].service_type is ServiceType.supported_living  # over domiciliary
    assert by_id["1-101000004"].host_authority == "E06000047"
    assert by_id["1-101000009"].service_type is ServiceType.shared_lives
    assert result.skipped == {"dormant": 1, "not adult social care": 1, "with no scored service type": 1}
    assert [(u.line, u.name) for u in result.unmapped] == [(12, "Atlantis")]
    assert result.default_capacity_used == 3  # the three services without beds
    assert {by_id[i].capacity for i in ("1-101000003", "1-101000004", "1-101000009")} == {1}
    assert result.without_manager == 1
    assert not result.problems


@pytest.mark.parametrize("rows_above", [0, 1, 9])
def test_finds_the_header_wherever_it_is(tmp_path: Path, rows_above: int) -> None:
    moved = read_directory(_header_at(tmp_path, rows_above), load_authority_names(), default_capacity=1)
    original = read_directory(HSCA, load_authority_names(), default_capacity=1)
    assert moved.locations == original.locations
    assert [u.line for u in moved.unmapped] == [rows_above + 1 + 7]


def test_a_file_without_the_columns_names_them(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("Location ID,Name\n1-101000001,Oak\n")
    with pytest.raises(SpreadsheetError, match="Dormant"):
        read_directory(path, load_authority_names(), default_capacity=1)


def test_a_file_without_service_type_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no_flags.csv"
    rows = _rows()[4:]
    keep = [i for i, h in enumerate(rows[0]) if not h.startswith("Service type - ")]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([[r[i] for i in keep] for r in rows])
    with pytest.raises(DirectoryImportError, match="none of the service type columns"):
        read_directory(path, load_authority_names(), default_capacity=1)


def test_ods_reads_the_same_as_its_csv_export(tmp_path: Path) -> None:
    ods = read_directory(_ods(tmp_path), load_authority_names(), default_capacity=1)
    csv_ = read_directory(HSCA, load_authority_names(), default_capacity=1)
    assert ods.locations == csv_.locations
    assert ods.skipped == csv_.skipped
    assert [u.name for u in ods.unmapped] == ["Atlantis"]
    # Line numbers are the data sheet's own rows, as a spreadsheet shows them.
    assert [u.line for u in ods.unmapped] == [12]


def test_default_capacity_option_and_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["directory", "import-cqc", str(HSCA), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "3 location(s) have no beds" in err and "capacity 1 each" in err
    assert main(["directory", "import-cqc", str(HSCA), "--dry-run", "--default-capacity", "40"]) == 0
    assert "no beds" not in capsys.readouterr().err
    result = read_directory(HSCA, load_authority_names(), default_capacity=40)
    assert {loc.location_id: loc.capacity for loc in result.locations}["1-101000003"] == 40


def test_unknown_authority_is_reported_and_strict_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["directory", "import-cqc", str(HSCA), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert f"{HSCA}: line 12: local authority 'Atlantis' is not in the ONS code list" in captured.err
    assert "kept 5 (1 with no registered manager listed), skipped 1 dormant, skipped 1 not adult social care" in (
        captured.out
    )
    assert "unmapped authorities 1" in captured.out
    assert main(["directory", "import-cqc", str(HSCA), "--dry-run", "--strict"]) == 2
    assert "nothing was imported" in capsys.readouterr().err


def test_no_names_drops_location_names() -> None:
    result = read_directory(HSCA, load_authority_names(), default_capacity=1, keep_names=False)
    assert all(loc.name is None for loc in result.locations)


def test_a_bad_row_fails_the_whole_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HSCA.read_text(encoding="utf-8").replace("1-000000102", "Mary Homes"), encoding="utf-8")
    assert main(["directory", "import-cqc", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "line 7: Provider ID" in err and "nothing was imported" in err


@pytest.mark.integration
def test_import_publishes_locations_and_no_personal_data(
    tmp_path: Path,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", test_kafka_settings.topic_prefix)
    caplog.set_level(logging.DEBUG)
    assert main(["directory", "import-cqc", str(_ods(tmp_path))]) == 0
    captured = capsys.readouterr()
    assert "imported 5 locations" in captured.out
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.locations, expect=5)
    assert sorted(r.key for r in records) == [
        b"1-101000001",
        b"1-101000002",
        b"1-101000003",
        b"1-101000004",
        b"1-101000009",
    ]
    values = [json.loads(r.value) for r in records]
    assert {v["host_authority"] for v in values} == {"E10000030", "E06000023", "E09000020", "E06000047", "E06000020"}
    everything = (
        b"".join(r.value + (r.key or b"") + b"".join(v for _, v in r.headers) for r in records).decode()
        + captured.out
        + captured.err
        + caplog.text
    )
    for text in NEVER_OUT:
        assert text not in everything
