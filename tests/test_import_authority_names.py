"""The shipped ONS code list and the name matching every importer uses."""

import json
from collections import Counter
from pathlib import Path

import pytest

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.cli import main
from services.ingest.authority_names import AuthorityListError, load_authority_names, normalise
from tests import cqc_layouts as layouts
from tests.conftest import consume_all


def test_the_list_holds_englands_153_social_care_authorities() -> None:
    names = load_authority_names().names
    assert len(names) == 153
    assert Counter(code[:3] for code in names) == {"E06": 63, "E08": 36, "E09": 33, "E10": 21}
    # Spot checks against codes the rest of the project and its sources use.
    assert names["E10000030"] == "Surrey"
    assert names["E06000036"] == "Bracknell Forest"
    assert names["E06000065"] == "North Yorkshire"  # the 2023 unitary, not the old county E10000023


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Bristol, City of", "E06000023"),
        ("Bristol City Council", "E06000023"),
        ("City of Bristol", "E06000023"),
        ("County Durham", "E06000047"),
        ("Durham County Council", "E06000047"),
        ("Herefordshire", "E06000019"),
        ("Kingston upon Hull, City of", "E06000010"),
        ("Hull", "E06000010"),
        ("St Helens", "E08000013"),
        ("Saint Helens Metropolitan Borough Council", "E08000013"),
        ("Telford & Wrekin", "E06000020"),
        ("Royal Borough of Kensington and Chelsea", "E09000020"),
        ("London Borough of Hammersmith & Fulham", "E09000013"),
        ("City of London", "E09000001"),
        ("City of Westminster", "E09000033"),
        ("stoke on trent", "E06000021"),
        ("BRIGHTON AND HOVE", "E06000043"),
        ("E10000030", "E10000030"),
    ],
)
def test_spellings_map(name: str, code: str) -> None:
    assert load_authority_names().code_for(name) == code


@pytest.mark.parametrize(
    "name",
    # The region; ambiguous short forms; areas abolished before April 2023; a district; a typo.
    ["London", "Newcastle", "Kingston", "Cumbria", "Northamptonshire", "Guildford", "Surry", "E10000023", ""],
)
def test_names_that_do_not_map_are_not_guessed(name: str) -> None:
    assert load_authority_names().code_for(name) is None


def test_normalise_strips_wrappers_only() -> None:
    assert normalise("The Royal Borough of Windsor & Maidenhead") == "windsor and maidenhead"
    assert normalise("Southend-on-Sea City Council") == "southend on sea"


def test_an_ons_release_file_can_be_used_instead(tmp_path: Path) -> None:
    release = tmp_path / "CTYUA_APR_2023_UK_NC.csv"
    release.write_text(
        "CTYUA23CD,CTYUA23NM,CTYUA23NMW,ObjectId\n"
        'E06000023,"Bristol, City of",,1\n'
        "E10000030,Surrey,,2\n"
        "W06000015,Cardiff,Caerdydd,3\n"
        "S12000036,City of Edinburgh,,4\n",
        encoding="utf-8-sig",
    )
    names = load_authority_names(release)
    assert names.names == {"E06000023": "Bristol, City of", "E10000030": "Surrey"}
    assert names.code_for("Bristol City Council") == "E06000023"
    assert names.code_for("Cardiff") is None  # not an English social-care authority code


def test_a_list_with_two_codes_for_one_name_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "codes.csv"
    bad.write_text('code,name\nE06000023,Bristol\nE06000024,"Bristol, City of"\n')
    with pytest.raises(AuthorityListError, match="normalise alike"):
        load_authority_names(bad)


@pytest.mark.integration
def test_import_authorities_publishes_the_list(
    test_kafka_settings: KafkaSettings, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", test_kafka_settings.topic_prefix)
    assert main(["directory", "import-authorities"]) == 0
    records = consume_all(test_kafka_settings.bootstrap_servers, topics.authorities, expect=153)
    assert len(records) == 153
    values = {r.key.decode(): json.loads(r.value) for r in records}
    assert values["E06000023"] == {"ons_code": "E06000023", "name": "Bristol, City of", "kind": "local_authority"}


@pytest.mark.parametrize("layout", ["LAD23_CTYUA23", "LTLA23_UTLA23"])
def test_an_ons_district_lookup_gives_every_upper_tier_authority(tmp_path: Path, layout: str) -> None:
    path = tmp_path / f"{layout}.csv"
    layouts.write_csv(path, layouts.district_lookup(getattr(layouts, layout)))
    names = load_authority_names(path)
    assert names.names == layouts.upper_tier_authorities()
    for county in ("Kent", "Essex", "Surrey", "Kent County Council"):
        assert names.code_for(county) is not None
    assert names.code_for("Maidstone") is None  # a district: not a social-care authority


def test_a_district_to_county_lookup_maps_metropolitan_and_london_rows_and_reports_what_it_lacks(
    tmp_path: Path,
) -> None:
    # The April 2021 England lookup: districts of counties (E10), metropolitan districts
    # under their former metropolitan county (E11), London boroughs under Inner/Outer
    # London (E13); no unitary authority at all.
    rows = [
        layouts.LAD21_CTY21,
        ["E07000110", "Maidstone", "E10000016", "Kent", "1"],
        ["E07000066", "Basildon", "E10000012", "Essex", "2"],
        ["E07000026", "Allerdale", "E10000006", "Cumbria", "3"],
        ["E08000003", "Manchester", "E11000001", "Greater Manchester", "4"],
        ["E09000020", "Kensington and Chelsea", "E13000001", "Inner London", "5"],
    ]
    path = layouts.write_csv(tmp_path / "LAD21_CTY21_EN_LU.csv", rows)
    names = load_authority_names(path)
    assert names.names == {
        "E10000016": "Kent",
        "E10000012": "Essex",
        "E10000006": "Cumbria",
        "E08000003": "Manchester",
        "E09000020": "Kensington and Chelsea",
    }
    assert names.columns == ("CTY21CD", "CTY21NM", "LAD21CD", "LAD21NM")
    missing = names.missing_from(load_authority_names())
    assert "E06000023" in missing and "E10000030" in missing  # Bristol (a unitary), Surrey (not in the rows)
    assert "E10000016" not in missing


@pytest.mark.parametrize(
    "header",
    [layouts.LAD23, ["LTLA23CD", "LTLA23NM", "ObjectId"], ["WD23CD", "WD23NM", "LAD23CD", "LAD23NM"]],
)
def test_a_file_with_only_lower_tier_codes_is_refused_naming_its_columns(tmp_path: Path, header: list[str]) -> None:
    path = layouts.write_csv(tmp_path / "lower.csv", [header, ["E07000110", "Maidstone", "", ""][: len(header)]])
    with pytest.raises(AuthorityListError, match="upper-tier") as raised:
        load_authority_names(path)
    for column in header:
        if column.upper().endswith(("CD", "NM")):
            assert column in str(raised.value)


@pytest.mark.parametrize(
    ("name", "successors"),
    [
        ("Cumbria", ["Cumberland (E06000063)", "Westmorland and Furness (E06000064)"]),
        ("Cumbria County Council", ["Cumberland (E06000063)", "Westmorland and Furness (E06000064)"]),
        ("Northamptonshire", ["North Northamptonshire (E06000061)", "West Northamptonshire (E06000062)"]),
    ],
)
def test_a_name_abolished_in_a_split_is_explained(name: str, successors: list[str]) -> None:
    names = load_authority_names()
    assert names.code_for(name) is None
    hint = names.reorganised(name)
    assert hint is not None
    for successor in successors:
        assert successor in hint


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Somerset", "E06000066"),
        ("North Yorkshire", "E06000065"),
        ("Buckinghamshire", "E06000060"),
        ("Bournemouth", "E06000058"),
        ("Poole", "E06000058"),
    ],
)
def test_names_of_areas_reorganised_whole_map_to_their_successor(name: str, code: str) -> None:
    assert load_authority_names().code_for(name) == code
