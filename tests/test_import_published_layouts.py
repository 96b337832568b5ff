"""The importers on the regulator's and ONS's files in their published layouts (header rows
in tests/cqc_layouts.py; every value invented), as .ods, .xlsx and CSV."""

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from services.cli import main
from services.ingest.authority_names import load_authority_names
from services.ingest.cqc_directory import read_directory
from tests import cqc_layouts as layouts
from tests.ods_files import write_ods
from tests.xlsx_files import write_xlsx

# Names of people in the fixture's personal columns: none may come out anywhere.
PEOPLE = ["Araminta Vexley", "Cosimo Thistlewood", "Perpetua Nankivell", "Ignatius Crowthorne", "Wilhelmina Oddfellow"]

Sheets = Sequence[tuple[str, Sequence[Sequence[str]]]]


def _records() -> list[dict[str, str]]:
    common = {"Dormant (Y/N)": "N", "Location Inspection Directorate": "Adult social care"}
    return [
        {  # a nursing home with a manager, in a county
            **common,
            "Location ID": "1-201000001",
            "Location Name": "Hop Garden Nursing Home",
            "Care home?": "Y",
            "Registered manager": PEOPLE[0],
            "Care homes beds": "42",
            "Location Type/Sector": "Social Care Org",
            "Location Local Authority": "Kent",
            "Location Postal Code": "ME14 1ZZ",
            "Provider ID": "1-000000201",
            "Provider Nominated Individual Name": PEOPLE[1],
            "Service type - Care home service with nursing": "Y",
        },
        {  # home care, no manager registered, in another county
            **common,
            "Location ID": "1-201000002",
            "Location Name": "Estuary Home Support",
            "Care home?": "N",
            "Location Type/Sector": "Social Care Org",
            "Location Local Authority": "Essex",
            "Provider ID": "1-000000202",
            "Provider Main Partner Name": PEOPLE[2],
            "Service type - Domiciliary care service": "Y",
        },
        {  # one site registered by two providers: this registration and the next
            **common,
            "Location ID": "1-201000003",
            "Location Name": "Downs View",
            "Care home?": "Y",
            "Registered manager": PEOPLE[3],
            "Care homes beds": "20",
            "Location Type/Sector": "Social Care Org",
            "Location Local Authority": "Surrey",
            "Provider ID": "1-000000203",
            "Service type - Care home service without nursing": "Y",
            "Location Dual Registered": "Dual Registration",
            "Primary ID (Dual registration locations)": "1-201000003",
        },
        {
            **common,
            "Location ID": "1-201000004",
            "Location Name": "Downs View",
            "Care home?": "Y",
            "Registered manager": PEOPLE[4],
            "Care homes beds": "20",
            "Location Type/Sector": "Social Care Org",
            "Location Local Authority": "Surrey",
            "Provider ID": "1-000000204",
            "Service type - Care home service with nursing": "Y",
            "Location Dual Registered": "Dual Registration",
            "Primary ID (Dual registration locations)": "1-201000003",
        },
        {  # an NHS hospital site: its ID is not a CQC `1-` ID
            "Location ID": "RXQ02",
            "Dormant (Y/N)": "N",
            "Location Name": "Vale General Hospital",
            "Care home?": "N",
            "Location Type/Sector": "NHS Healthcare Organisation",
            "Location Inspection Directorate": "Hospitals",
            "Location Local Authority": "Buckinghamshire",
            "Provider ID": "RXQ",
            "Service type - Acute services with overnight beds": "Y",
        },
        {  # a GP practice
            "Location ID": "1-201000006",
            "Dormant (Y/N)": "N",
            "Location Name": "Market Street Surgery",
            "Care home?": "N",
            "Location Type/Sector": "Primary Medical Services",
            "Location Inspection Directorate": "Primary medical services",
            "Location Local Authority": "Somerset",
            "Provider ID": "1-000000206",
            "Service type - Doctors consultation service": "Y",
        },
        {  # a care home in the two new unitary authorities of 2023
            **common,
            "Location ID": "1-201000007",
            "Location Name": "Mendip Lodge",
            "Care home?": "Y",
            "Care homes beds": "12",
            "Location Local Authority": "Somerset",
            "Provider ID": "1-000000207",
            "Service type - Care home service without nursing": "Y",
        },
        {
            **common,
            "Location ID": "1-201000008",
            "Location Name": "Dales House",
            "Care home?": "Y",
            "Care homes beds": "30",
            "Location Local Authority": "North Yorkshire",
            "Provider ID": "1-000000207",
            "Service type - Care home service without nursing": "Y",
        },
    ]


def _dual_sheet() -> list[list[str]]:
    return layouts.table(
        layouts.DUAL_REGISTRATION,
        [
            {
                "Location ID": "1-201000003",
                "Location Name": "Downs View",
                "Location Type/Sector": "Social Care Org",
                "Provider ID": "1-000000203",
                "Linked Organisation ID": "1-000000204",
                "Relationship": "Dual Registration",
                "Primary ID": "Y",
            },
            {
                "Location ID": "1-201000004",
                "Location Name": "Downs View",
                "Location Type/Sector": "Social Care Org",
                "Provider ID": "1-000000204",
                "Linked Organisation ID": "1-000000203",
                "Relationship": "Dual Registration",
                "Primary ID": "N",
            },
        ],
    )


def _workbook(header: Sequence[str], notice: bool) -> Sheets:
    records = _records()
    if "Location Dual Registered" not in header:
        for record in records:
            record.pop("Location Dual Registered", None)
            record.pop("Primary ID (Dual registration locations)", None)
    data = layouts.table(header, records)
    above = [[line] for line in layouts.NOTICE] + [[]] if notice else []
    return [
        ("README", layouts.README),
        ("HSCA_Active_Locations", above + data),
        ("Dual_Registration_Locations", _dual_sheet()),
    ]


def _as_csv(path: Path, sheets: Sheets) -> Path:
    # A CSV export is one sheet: the data sheet.
    return layouts.write_csv(path.with_suffix(".csv"), sheets[1][1])


WRITERS: dict[str, Callable[[Path, Sheets], Path]] = {
    "ods": lambda path, sheets: write_ods(path.with_suffix(".ods"), sheets),
    "xlsx": lambda path, sheets: write_xlsx(path.with_suffix(".xlsx"), sheets),
    "csv": _as_csv,
}
LAYOUTS = {"2026": (layouts.HSCA_2026, True), "long manager header": (layouts.HSCA_LONG_MANAGER, False)}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_the_directory_in_each_published_layout_and_format(
    tmp_path: Path, layout: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    header, notice = LAYOUTS[layout]
    path = WRITERS[kind](tmp_path / "HSCA_Active_Locations", _workbook(header, notice))
    result = read_directory(path, load_authority_names(), default_capacity=1)
    by_id = {loc.location_id: loc for loc in result.locations}
    assert sorted(by_id) == ["1-201000001", "1-201000002", "1-201000003", "1-201000004", "1-201000007", "1-201000008"]
    assert [(by_id[i].host_authority, by_id[i].capacity) for i in sorted(by_id)] == [
        ("E10000016", 42),  # Kent
        ("E10000012", 1),  # Essex: care at home, the default capacity
        ("E10000030", 20),  # Surrey: each registration of the dual-registered site is a location
        ("E10000030", 20),
        ("E06000066", 12),  # Somerset, the unitary authority since April 2023
        ("E06000065", 30),  # North Yorkshire, likewise
    ]
    # The manager column under either of its published names: three kept locations list none.
    assert result.without_manager == 3
    assert result.skipped == {"not adult social care": 2}
    assert not result.problems and not result.unmapped
    assert main(["directory", "import-cqc", str(path), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "kept 6 (3 with no registered manager listed)" in out.out
    for person in PEOPLE:
        assert person not in out.out + out.err


def test_no_personal_column_is_held_in_the_rows(tmp_path: Path) -> None:
    from services.ingest.cqc_directory import COLUMNS, REQUIRED
    from services.ingest.spreadsheet import read_table

    path = write_ods(tmp_path / "d.ods", _workbook(layouts.HSCA_LONG_MANAGER, notice=True))
    table = read_table(path, COLUMNS, REQUIRED)
    values = [v for row in table.rows for v in row.values.values()]
    assert values, "the table has rows"
    for person in PEOPLE:
        assert person not in values
    assert {"y"} >= {row.get("Registered manager").casefold() for row in table.rows} - {""}


def test_the_dual_registration_sheet_alone_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = layouts.write_csv(tmp_path / "Dual_Registration_Locations.csv", _dual_sheet())
    assert main(["directory", "import-cqc", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Dual_Registration_Locations" in err and "HSCA_Active_Locations" in err


def _county_file(tmp_path: Path) -> Path:
    records = [r for r in _records() if r["Location Local Authority"] in ("Kent", "Essex", "Surrey")]
    return layouts.write_csv(tmp_path / "counties.csv", layouts.table(layouts.HSCA_2026, records))


@pytest.mark.parametrize("lookup", ["LAD23_CTYUA23", "LTLA23_UTLA23"])
def test_authority_codes_from_an_ons_district_lookup_map_every_county(
    tmp_path: Path, lookup: str, capsys: pytest.CaptureFixture[str]
) -> None:
    codes = layouts.write_csv(tmp_path / f"{lookup}.csv", layouts.district_lookup(getattr(layouts, lookup)))
    assert set(load_authority_names(codes).names) == set(layouts.upper_tier_authorities())
    args = ["directory", "import-cqc", str(_county_file(tmp_path)), "--dry-run", "--authority-codes", str(codes)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "kept 4 " in out and "unmapped authorities 0" in out


def test_authority_codes_with_only_district_codes_are_refused_naming_the_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [layouts.LAD23, ["E07000110", "Maidstone", "", "1"], ["E06000023", "Bristol, City of", "", "2"]]
    codes = layouts.write_csv(tmp_path / "LAD_APR_2023_UK_NC.csv", rows)
    args = ["directory", "import-cqc", str(_county_file(tmp_path)), "--dry-run", "--authority-codes", str(codes)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "LAD23CD" in err and "LAD23NM" in err and "upper-tier" in err


def test_a_pre_2023_name_is_reported_with_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {**_records()[0], "Location ID": "1-201000009", "Location Local Authority": "Cumbria"}
    path = layouts.write_csv(tmp_path / "old.csv", layouts.table(layouts.HSCA_LONG_MANAGER, [_records()[0], record]))
    assert main(["directory", "import-cqc", str(path), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "line 3: local authority 'Cumbria' is not in the ONS code list: Cumbria was abolished on 1 April 2023" in (
        out.err
    )
    assert "Cumberland (E06000063)" in out.err and "Westmorland and Furness (E06000064)" in out.err
    assert "kept 1 " in out.out and "unmapped authorities 1" in out.out


def test_a_code_list_that_maps_no_location_is_not_a_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A district-to-county lookup of another area: none of the file's counties is in it.
    rows = [layouts.LAD21_CTY21, ["E08000003", "Manchester", "E11000001", "Greater Manchester", "1"]]
    codes = layouts.write_csv(tmp_path / "LAD21_CTY21_EN_LU.csv", rows)
    args = ["directory", "import-cqc", str(_county_file(tmp_path)), "--dry-run", "--authority-codes", str(codes)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 authorities from columns CTY21CD, CTY21NM, LAD21CD, LAD21NM" in err
    assert "lacks 152 of the 153 authorities" in err
    assert "no location's local authority mapped (4 unmapped); nothing was imported" in err
