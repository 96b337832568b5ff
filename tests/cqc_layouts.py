"""The regulator's and ONS's published header rows, one per known release layout, and small
tables in them for the importers' tests. Column names are facts; every value is invented.

Where each header row comes from (public material found with the project's search tools;
none of it was downloaded from the publisher on this machine, which has no internet):

- `HSCA_2026`: the `HSCA_Active_Locations` sheet of CQC's "Care directory with filters",
  122 columns, header on row 1, as a public loader checked it column by column against the
  July to October 2026 files (`EXPECTED_HEADERS` of a published `s11_cqc_editions.py`).
  Those workbooks have a `README` sheet first and a `Dual_Registration_Locations` sheet
  after the data; the 1 September 2026 file carried a notice ("Issues with our care
  directory files ...") above the header.
- `HSCA_LONG_MANAGER`: releases that name the manager column `Registered manager (note;
  where there is more than one manager at a location, ...)` (that header as a 2016 release
  has it in a public R script; the issue found it in a 119-column release). The full
  119-column row of that release was not available: this layout is the 2026 row with the
  manager's long header and without the two dual-registration columns (120 columns), so
  every column the importer reads is as published, and the rest are real columns too.
- `DUAL_REGISTRATION`: the `Dual_Registration_Locations` sheet, as two public loaders of
  the 2026 workbook read it.
- `RATINGS_2026`: the `Locations` sheet of CQC's "Latest ratings" (`Latest_ratings.ods`,
  1 September 2026), 28 columns, key question called `Domain`.
- `RATINGS_KEY_QUESTION`: an earlier `Locations` sheet (25 columns, `Key Question`), as a
  public SQLite schema made from the file holds it; 2016 releases had the same names.
- ONS lookups: `LAD23_CTYUA23` is "Local Authority District to County and Unitary
  Authority (April 2023) Lookup in EW"; `LTLA23_UTLA23` the lower-tier to upper-tier
  lookup (April 2023); `LAD21_CTY21` "Local Authority District to County (April 2021)
  Lookup in England", which lists only districts in counties (E10), metropolitan counties
  (E11) and Inner/Outer London (E13): no unitary authority; `CTYUA23` "Counties and
  Unitary Authorities (April 2023) Names and Codes"; `LAD23` the districts' names and codes.
"""

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from services.ingest.authority_names import ONS_LIST

_SERVICE_TYPES = [
    "Acute services with overnight beds",
    "Acute services without overnight beds / listed acute services with or without overnight beds",
    "Ambulance service",
    "Blood and Transplant service",
    "Care home service with nursing",
    "Care home service without nursing",
    "Community based services for people who misuse substances",
    "Community based services for people with a learning disability",
    "Community based services for people with mental health needs",
    "Community health care services - Independent Midwives",
    "Community health care services - Nurses Agency only",
    "Community healthcare service",
    "Dental service",
    "Diagnostic and/or screening service",
    "Diagnostic and/or screening service - single handed sessional providers",
    "Doctors consultation service",
    "Doctors treatment service",
    "Domiciliary care service",
    "Extra Care housing services",
    "Hospice services",
    "Hospice services at home",
    "Hospital services for people with mental health needs, learning disabilities and problems with substance misuse",
    "Hyperbaric Chamber",
    "Long term conditions services",
    "Mobile doctors service",
    "Prison Healthcare Services",
    "Rehabilitation services",
    "Remote clinical advice service",
    "Residential substance misuse treatment and/or rehabilitation service",
    "Shared Lives",
    "Specialist college service",
    "Supported living service",
    "Urgent care services",
]
_ACTIVITIES = [
    "Accommodation for persons who require nursing or personal care",
    "Accommodation for persons who require treatment for substance misuse",
    "Assessment or medical treatment for persons detained under the Mental Health Act 1983",
    "Diagnostic and screening procedures",
    "Family planning",
    "Management of supply of blood and blood derived products",
    "Maternity and midwifery services",
    "Nursing care",
    "Personal care",
    "Services in slimming clinics",
    "Surgical procedures",
    "Termination of pregnancies",
    "Transport services, triage and medical advice provided remotely",
    "Treatment of disease, disorder or injury",
]
_BANDS = [
    "Children 0-18 years",
    "Dementia",
    "Learning disabilities or autistic spectrum disorder",
    "Mental Health",
    "Older People",
    "People detained under the Mental Health Act",
    "People who misuse drugs and alcohol",
    "People with an eating disorder",
    "Physical Disability",
    "Sensory Impairment",
    "Whole Population",
    "Younger Adults",
]
_LOCATION = [
    "Location ID",
    "Location HSCA start date",
    "Dormant (Y/N)",
    "Care home?",
    "Location Name",
    "Location ODS Code",
    "Location Telephone Number",
    "Registered manager",
    "Location Web Address",
    "Care homes beds",
    "Location Type/Sector",
    "Location Inspection Directorate",
    "Location Primary Inspection Category",
    "Location Latest Overall Rating",
    "Publication Date",
    "Inherited Rating (Y/N)",
    "Location Region",
    "Location NHS Region",
    "Location Local Authority",
    "Location ONSPD CCG Code",
    "Location ONSPD CCG",
    "Location Commissioning CCG Code",
    "Location Commissioning CCG",
    "Location Street Address",
    "Location Address Line 2",
    "Location City",
    "Location County",
    "Location Postal Code",
    "Location PAF ID",
    "Location UPRN ID",
    "Location Latitude",
    "Location Longitude",
    "Location Parliamentary Constituency",
]
_PROVIDER = [
    "Brand ID",
    "Brand Name",
    "Provider Companies House Number",
    "Provider Charity Number",
    "Provider ID",
    "Provider Name",
    "Provider HSCA start date",
    "Provider Type/Sector",
    "Provider Inspection Directorate",
    "Provider Primary Inspection Category",
    "Provider Ownership Type",
    "Provider Telephone Number",
    "Provider Web Address",
    "Provider Street Address",
    "Provider Address Line 2",
    "Provider City",
    "Provider County",
    "Provider Postal Code",
    "Provider PAF ID",
    "Provider UPRN ID",
    "Provider Local Authority",
    "Provider Region",
    "Provider NHS Region",
    "Provider Latitude",
    "Provider Longitude",
    "Provider Parliamentary Constituency",
    "Provider Nominated Individual Name",
    "Provider Main Partner Name",
]
DUAL_COLUMNS = ["Location Dual Registered", "Primary ID (Dual registration locations)"]
HSCA_2026 = [
    *_LOCATION,
    *_PROVIDER,
    *(f"Regulated activity - {a}" for a in _ACTIVITIES),
    *(f"Service type - {s}" for s in _SERVICE_TYPES),
    *(f"Service user band - {b}" for b in _BANDS),
    *DUAL_COLUMNS,
]
LONG_MANAGER = (
    "Registered manager (note; where there is more than one manager at a location, only one is included here "
    "for ease of presentation. The full list is available if required)."
)
HSCA_LONG_MANAGER = [LONG_MANAGER if h == "Registered manager" else h for h in HSCA_2026 if h not in DUAL_COLUMNS]
DUAL_REGISTRATION = [
    "Location ID",
    "Location Name",
    "Location HSCA Start Date",
    "Location Type/Sector",
    "Provider ID",
    "Provider Name",
    "Linked Organisation ID",
    "Linked Organisation Name",
    "Relationship",
    "Relationship Start Date",
    "Primary ID",
]
NOTICE = [
    "Issues with our care directory files",
    "We are currently moving to a new digital system to manage and publish our care directory (test fixture).",
]
README = [
    ["Active locations for providers registered under the Health and Social Care Act (HSCA)"],
    ["Source: CQC database as at 01 November 2026 (CareSignal test fixture; every value is invented)"],
]

RATINGS_2026 = [
    "Location ID",
    "Location ODS Code",
    "Location Name",
    "Care Home?",
    "Location Type",
    "Location Primary Inspection Category",
    "Location Street Address",
    "Location Address Line 2",
    "Location City",
    "Location Post Code",
    "Location Local Authority",
    "Location Region",
    "Location NHS Region",
    "Location ONSPD CCG Code",
    "Location ONSPD CCG",
    "Location Commissioning CCG Code",
    "Location Commissioning CCG Name",
    "Service / Population Group",
    "Domain",
    "Latest Rating",
    "Publication Date",
    "Report Type",
    "Inherited Rating (Y/N)",
    "URL",
    "Provider ID",
    "Provider Name",
    "Brand ID",
    "Brand Name",
]
RATINGS_KEY_QUESTION = [
    "Location ID",
    "Location Name",
    "Care Home?",
    "Location Type",
    "Location Primary Inspection Category",
    "Location Street Address",
    "Location Address Line 2",
    "Location City",
    "Location Post Code",
    "Location Local Authority",
    "Location Region",
    "Location ONSPD CCG Code",
    "Location ONSPD CCG",
    "Location Commissioning CCG Code",
    "Location Commissioning CCG Name",
    "Service / Population Group",
    "Key Question",
    "Latest Rating",
    "Publication Date",
    "Report Type",
    "URL",
    "Provider ID",
    "Provider Name",
    "Brand ID",
    "Brand Name",
]

LAD23_CTYUA23 = ["LAD23CD", "LAD23NM", "CTYUA23CD", "CTYUA23NM", "ObjectId"]
LTLA23_UTLA23 = ["LTLA23CD", "LTLA23NM", "UTLA23CD", "UTLA23NM", "ObjectId"]
LAD21_CTY21 = ["LAD21CD", "LAD21NM", "CTY21CD", "CTY21NM", "FID"]
CTYUA23 = ["CTYUA23CD", "CTYUA23NM", "CTYUA23NMW", "ObjectId"]
LAD23 = ["LAD23CD", "LAD23NM", "LAD23NMW", "ObjectId"]

Record = Mapping[str, str]


def table(header: Sequence[str], records: Iterable[Record]) -> list[list[str]]:
    """The header and one row per record, in the header's order; a record's key must be a
    column of the header (or, for the manager, the short name of its long header)."""
    index = {h: i for i, h in enumerate(header)}
    if LONG_MANAGER in index:
        index["Registered manager"] = index[LONG_MANAGER]
    rows = [list(header)]
    for record in records:
        unknown = set(record) - set(index)
        assert not unknown, f"not columns of this layout: {sorted(unknown)}"
        row = [""] * len(header)
        for column, value in record.items():
            row[index[column]] = value
        rows.append(row)
    return rows


def write_csv(path: Path, rows: Iterable[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def upper_tier_authorities() -> dict[str, str]:
    """England's 153 social-care authorities of the shipped list: code -> ONS name."""
    with ONS_LIST.open(encoding="utf-8") as fh:
        rows = list(csv.reader(line for line in fh if not line.startswith("#")))
    return {code: name for code, name in rows[1:]}


def district_lookup(header: Sequence[str]) -> list[list[str]]:
    """An ONS district-to-upper-tier lookup in `header`'s layout covering all of England (two
    invented districts per county, one row per unitary, metropolitan or London authority
    with itself as its upper tier) and two Welsh rows, as the EW releases have."""
    rows: list[list[str]] = [list(header)]
    number = 0
    for code, name in upper_tier_authorities().items():
        if code.startswith("E10"):
            for part in ("North", "South"):
                number += 1
                rows.append([f"E07{number:06d}", f"{part} {name} district", code, name, str(len(rows))])
        else:
            rows.append([code, name, code, name, str(len(rows))])
    rows.append(["W06000015", "Cardiff", "W06000015", "Cardiff", str(len(rows))])
    rows.append(["W06000001", "Isle of Anglesey", "W06000001", "Isle of Anglesey", str(len(rows))])
    return rows
