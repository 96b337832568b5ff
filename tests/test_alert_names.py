"""Where the alert service finds names: the ingest key file's entries name their sources
(re-read when it changes, never fatal), the shipped ONS list names authorities nobody
imported, the directory names organisations, and the CQC import carries the provider's
registered name into the location records that carry it there."""

from pathlib import Path

from schemas.directory import Location, ServiceType
from services.alerts.names import NameBook, SourceNamesFile, reference_authorities
from services.alerts.routing import Directory
from services.ingest.auth import ApiKeyEntry, ApiKeyRegistry, append_key
from services.ingest.authority_names import load_authority_names
from services.ingest.cqc_directory import read_directory
from tests.board_data import key_file_entry as entry


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_key_files_entries_name_their_sources(tmp_path: Path) -> None:
    keys = tmp_path / "api-keys.toml"
    keys.write_text(
        entry("kent-ecm", "urn:caresignal:source:kent-ecm")
        # Two keys for one source, one of them naming it: that name.
        + entry("surrey-complaints", "urn:caresignal:source:surrey-complaints", "Surrey County Council complaints")
        + entry("surrey-history", "urn:caresignal:source:surrey-complaints")
        # Two keys, neither naming the source: a key's name would name a use, not the source.
        + entry("police-live", "urn:caresignal:source:police")
        + entry("police-history", "urn:caresignal:source:police")
    )
    names = SourceNamesFile(keys).current()
    assert names == {
        "urn:caresignal:source:kent-ecm": "kent-ecm",
        "urn:caresignal:source:surrey-complaints": "Surrey County Council complaints",
    }


def test_the_source_names_follow_the_file_and_survive_a_broken_edit_or_no_file(tmp_path: Path) -> None:
    keys = tmp_path / "api-keys.toml"
    clock = Clock()
    watched = SourceNamesFile(keys, interval_s=1.0, clock=clock)
    assert watched.current() == {}  # no file: no names, and no error
    keys.write_text(entry("kent-ecm", "urn:caresignal:source:kent-ecm", "Kent call monitoring"))
    clock.now += 1.0
    assert watched.current() == {"urn:caresignal:source:kent-ecm": "Kent call monitoring"}
    keys.write_text("[[key]]\nname = ")  # a broken edit: the last good names stay
    clock.now += 1.0
    assert watched.current() == {"urn:caresignal:source:kent-ecm": "Kent call monitoring"}
    keys.write_text(entry("kent-ecm", "urn:caresignal:source:kent-ecm", "Kent County Council call monitoring"))
    clock.now += 1.0
    assert watched.current() == {"urn:caresignal:source:kent-ecm": "Kent County Council call monitoring"}
    keys.unlink()
    clock.now += 1.0
    assert watched.current() == {}


def test_authorities_are_named_by_their_records_else_by_the_ons_list() -> None:
    reference = reference_authorities()
    assert reference["E10000030"] == "Surrey" and reference["E06000066"] == "Somerset"
    directory = Directory()
    book = NameBook(directory, reference)
    assert book.current().authority_label("E10000030") == "Surrey (E10000030)"
    directory.authority_names["E10000030"] = "Surrey County Council"  # an authority record wins
    assert book.current().authority("E10000030") == "Surrey County Council"
    assert book.current().authority_label("E10000099") == "E10000099"  # unknown: its code alone


def test_an_organisation_is_named_by_its_locations_latest_record() -> None:
    directory = Directory()
    book = NameBook(directory)

    def put(location_id: str, provider_name: str | None) -> None:
        directory.put_location(
            Location(
                location_id=location_id,
                provider_id="1-000000101",
                service_type=ServiceType.care_home,
                capacity=10,
                host_authority="E10000030",
                provider_name=provider_name,
            )
        )

    put("1-101000001", None)
    assert book.current().organisation_label("1-000000101") == "Organisation 1-000000101"
    put("1-101000001", "Oak Care Ltd")
    put("1-101000002", None)  # a record without the name does not forget it
    assert book.current().organisation_label("1-000000101") == "Oak Care Ltd (1-000000101)"
    put("1-101000002", "Oak Care Group Ltd")  # renamed: the latest record wins
    assert book.current().organisation("1-000000101") == "Oak Care Group Ltd"


def test_the_cqc_directory_import_keeps_an_organisations_registered_name_and_never_a_persons(
    tmp_path: Path,
) -> None:
    header = [
        "Location ID",
        "Location Name",
        "Provider ID",
        "Provider Name",
        "Provider Ownership Type",
        "Dormant (Y/N)",
        "Care homes beds",
        "Location Local Authority",
        "Location Inspection Directorate",
        "Service type - Care home service without nursing",
    ]
    rows = [
        ("1-101000001", "1-000000101", "Oak Care Ltd", "Organisation"),
        ("1-101000002", "1-000000102", "Surrey NHS Trust", "NHS Body"),
        # Registered as people: their names are theirs, not a company's.
        ("1-101000003", "1-000000103", "Mrs Harriet Quillfeather", "Individual"),
        ("1-101000004", "1-000000104", "Mr A Bloggs and Mrs B Bloggs", "Partnership"),
        ("1-101000005", "1-000000105", "Unknown Kind Ltd", ""),  # not said: not kept
    ]
    lines = [",".join(header)] + [
        f"{loc},Home {n},{pid},{name},{ownership},N,10,Surrey,Adult social care,Y"
        for n, (loc, pid, name, ownership) in enumerate(rows)
    ]
    path = tmp_path / "HSCA_Active_Locations.csv"
    path.write_text("\n".join(lines) + "\n")
    result = read_directory(path, load_authority_names(), default_capacity=1)
    kept = {loc.location_id: loc.provider_name for loc in result.locations}
    assert kept == {
        "1-101000001": "Oak Care Ltd",
        "1-101000002": "Surrey NHS Trust",
        "1-101000003": None,
        "1-101000004": None,
        "1-101000005": None,
    }
    assert "provider names withheld (provider not registered as an organisation) 3" in result.summary()
    unnamed = read_directory(path, load_authority_names(), default_capacity=1, keep_names=False)
    assert all(loc.provider_name is None for loc in unnamed.locations)


def test_a_key_made_with_a_source_name_names_its_source(tmp_path: Path) -> None:
    keys = tmp_path / "api-keys.toml"
    common = {"source": "urn:caresignal:source:kent-ecm", "event_types": ["missed_visit"]}
    named = ApiKeyEntry(name="kent-ecm", sha256="1" * 64, source_name="Kent County Council call monitoring", **common)
    append_key(keys, named)
    append_key(keys, ApiKeyEntry(name="history-load", sha256="2" * 64, backfill=True, **common))
    assert len(ApiKeyRegistry.load(keys).names()) == 2  # ingest reads the file it wrote
    assert SourceNamesFile(keys).current() == {"urn:caresignal:source:kent-ecm": "Kent County Council call monitoring"}
