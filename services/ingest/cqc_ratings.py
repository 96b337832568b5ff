"""`caresignal directory import-cqc-ratings FILE`: the regulator's latest ratings (the
`Locations` sheet of `Latest_ratings`, long format, one row per location, service or
population group and key question) into `cqc_rating` events.

The file holds every sector: NHS trusts' sites (IDs such as `RXQ02`, not CQC `1-` IDs), GP
practices, dentists, independent hospitals. Only adult social care (`Location Type` =
`Social Care Org`) is imported; every other row is skipped and counted by its reason.

One event per location: its Overall rating with the latest rating of each key question,
dated by the Overall row's publication date. The event id is derived from the location and
that date, so importing the same file (or next month's, for an unchanged location) again
writes records that consumers recognise as the same event by (source, id).
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from pydantic import ValidationError

from schemas.events import CqcRatingEvent
from schemas.identifiers import CQC_ID_PATTERN
from schemas.topics import BACKFILL_HEADER, Topics
from services.broker.security import PLAINTEXT, KafkaSecurity
from services.ingest.admission import CLOUDEVENTS_CONTENT_TYPE
from services.ingest.bulk_publish import send_all
from services.ingest.directory_import import DirectoryImportError, RowProblem
from services.ingest.publisher import OutRecord
from services.ingest.spreadsheet import Column, Row, read_table

SOURCE = "urn:caresignal:source:cqc-ratings"
EVENT_TYPE = "uk.caresignal.cqc_rating.v1"

LOCATION_ID = "Location ID"
KEY_QUESTION = "Key Question"
RATING = "Latest Rating"
PUBLISHED = "Publication Date"
POPULATION_GROUP = "Service / Population Group"
LOCATION_TYPE = "Location Type"
DIRECTORATE = "Location Inspection Directorate"
REQUIRED = {LOCATION_ID, KEY_QUESTION, RATING, PUBLISHED}
COLUMNS = (
    Column(LOCATION_ID),
    # Releases since about 2020 call the key question "Domain".
    Column(KEY_QUESTION, spellings=("Domain",)),
    Column(RATING),
    Column(PUBLISHED),
    Column(POPULATION_GROUP),
    Column(LOCATION_TYPE, spellings=("Location Type/Sector",)),
    Column(DIRECTORATE),
)
# The sector, by the column the file has: other sectors' ratings (hospitals, GPs) are not scored.
SECTORS = {LOCATION_TYPE: "social care org", DIRECTORATE: "adult social care"}

KEY_QUESTIONS = {
    "overall": "overall",
    "safe": "safe",
    "effective": "effective",
    "caring": "caring",
    "responsive": "responsive",
    "well-led": "well_led",
    "well led": "well_led",
}
RATINGS = {
    "outstanding": "outstanding",
    "good": "good",
    "requires improvement": "requires_improvement",
    "inadequate": "inadequate",
}
# Published for some key questions or services; not a rating, so the key question is left out.
NOT_RATED = {
    "insufficient evidence to rate",
    "not rated",
    "no rating",
    "inspected but not rated",
    "not formally rated",
    "not applicable",
}
SERVICE_LEVEL = "service-level (a service's or population group's rating, not the location's)"
NOT_A_CQC_ID = "not a CQC location ID (NHS sites have their own)"
NO_SECTOR = "with no Location Type"

_LOCATION_ID = re.compile(CQC_ID_PATTERN)
_DATE_FORMATS = ("%d/%m/%Y", "%d %B %Y", "%d %b %Y", "%d-%b-%Y", "%d-%b-%y")


@dataclass
class RatingsImport:
    events: list[CqcRatingEvent] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # rows left out, by reason
    not_rated: int = 0  # locations whose Overall is not a rating
    no_overall: int = 0  # locations with key-question rows but no Overall row

    def summary(self, backfill: int) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return (
            f"{len(self.events)} rating events ({backfill} older than the age limit, marked backfill); "
            f"skipped rows: {skipped}; locations not rated overall {self.not_rated}, "
            f"with no Overall row {self.no_overall}"
        )


def parse_date(raw: str) -> date:
    text = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([ T].*)?", text):
        return date.fromisoformat(text[:10])
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")


def event_id(location_id: str, published: date) -> str:
    return f"cqc-rating-{location_id}-{published.isoformat()}"


@dataclass
class _Location:
    overall: tuple[int, str, date] | None = None  # line, rating, publication date
    key_questions: dict[str, str] = field(default_factory=dict)
    unrated_overall: bool = False


def skip_reason(row: Row) -> str | None:
    """Why a row is not adult social care's own rating of a location, or None to read it."""
    for column, wanted in SECTORS.items():
        value = row.get(column)
        if value and value.casefold() != wanted:
            return f"of {column} {value!r}"
    if not _LOCATION_ID.fullmatch(row.get(LOCATION_ID)):
        return NOT_A_CQC_ID
    if not any(row.get(column) for column in SECTORS):
        return NO_SECTOR
    group = row.get(POPULATION_GROUP)
    if group and group.casefold() != "overall":
        # e.g. a hospital's "Medical care", or one service of a care provider with several.
        return SERVICE_LEVEL
    return None


def map_rows(rows: Iterable[Row], now: datetime | None = None) -> RatingsImport:
    result = RatingsImport()
    by_location: dict[str, _Location] = {}
    for row in rows:
        reason = skip_reason(row)
        if reason is not None:
            result.skipped[reason] += 1
            continue
        location_id = row.get(LOCATION_ID)
        question = KEY_QUESTIONS.get(row.get(KEY_QUESTION).casefold())
        if question is None:
            result.problems.append(
                RowProblem(row.line, KEY_QUESTION, f"unknown key question {row.get(KEY_QUESTION)!r}")
            )
            continue
        try:
            published = parse_date(row.get(PUBLISHED))
        except ValueError as exc:
            result.problems.append(RowProblem(row.line, PUBLISHED, str(exc)))
            continue
        word = row.get(RATING).casefold()
        entry = by_location.setdefault(location_id, _Location())
        if word in NOT_RATED:
            entry.unrated_overall |= question == "overall"
            continue
        rating = RATINGS.get(word)
        if rating is None:
            result.problems.append(RowProblem(row.line, RATING, f"unknown rating {row.get(RATING)!r}"))
            continue
        if question != "overall":
            entry.key_questions[question] = rating
            continue
        if entry.overall is not None:
            result.problems.append(
                RowProblem(row.line, KEY_QUESTION, f"a second Overall row (first: line {entry.overall[0]})")
            )
            continue
        entry.overall = (row.line, rating, published)
    for location_id, entry in by_location.items():
        if entry.overall is None:
            if entry.unrated_overall:
                result.not_rated += 1
            else:
                result.no_overall += 1
            continue
        line, overall, published = entry.overall
        obj = {
            "specversion": "1.0",
            "id": event_id(location_id, published),
            "source": SOURCE,
            "type": EVENT_TYPE,
            "time": datetime.combine(published, time(0), UTC),
            "subject": location_id,
            "data": {"overall": overall, "key_questions": entry.key_questions, "published": published},
        }
        try:
            result.events.append(CqcRatingEvent.model_validate(obj, context={"now": now or datetime.now(UTC)}))
        except ValidationError as exc:
            for err in exc.errors(include_input=False):
                where = {"subject": LOCATION_ID, "id": LOCATION_ID, "time": PUBLISHED}.get(str(err["loc"][0]), "(row)")
                result.problems.append(RowProblem(line, where, err["msg"]))
    return result


def read_ratings(path: Path, now: datetime | None = None) -> RatingsImport:
    table = read_table(path, COLUMNS, REQUIRED)
    if not any(column in table.found for column in SECTORS):
        raise DirectoryImportError(
            f"{path}: no {' or '.join(SECTORS)} column: without it the ratings of GP practices and other "
            f"services that have CQC location IDs cannot be told from adult social care's"
        )
    return map_rows(table.rows, now)


def rating_records(
    events: Sequence[CqcRatingEvent], topics: Topics, max_age: timedelta, now: datetime | None = None
) -> list[OutRecord]:
    """The events topic's records, as ingest writes them; a rating older than ingest's age
    limit is history: marked backfill so that loading it alerts nobody as if it were news."""
    oldest = (now or datetime.now(UTC)) - max_age
    records = []
    for event in events:
        headers: tuple[tuple[str, bytes], ...] = (("content-type", CLOUDEVENTS_CONTENT_TYPE),)
        if event.time < oldest:
            headers += ((BACKFILL_HEADER, b"1"),)
        records.append(OutRecord(topics.events, event.subject.encode(), event.model_dump_json().encode(), headers))
    return records


def send_records(
    records: Sequence[OutRecord], bootstrap_servers: str, timeout_s: float = 60, security: KafkaSecurity = PLAINTEXT
) -> int:
    return send_all(records, bootstrap_servers, "caresignal-cqc-ratings-import", timeout_s, security)
