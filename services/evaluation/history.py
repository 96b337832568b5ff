"""The retained history a policy what-if replays: a simulator file, or the topics.

- A file: NDJSON of CloudEvents as `caresignal simulate --to file` writes them, with the
  directory's `locations.csv` that `--directory` writes (by default looked for next to
  the events file).
- Kafka: the event topic and the locations topic, each read from the beginning to the end
  offsets it had when reading started.

What the scorer would not score is skipped and counted, as the scorer dead-letters it:
an event that breaks the contract, or (on the topic) whose key is not its subject; time
signals on the topic are skipped too (the replay emulates its own). A file line that is
not JSON at all, or a directory file with a bad row, is refused: that is not a history.
The shell of the what-if: all its I/O is here.
"""

import heapq
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from schemas.clock import is_time_signal
from schemas.directory import Location
from schemas.events import Event, EventParser
from services.broker.settings import KafkaSettings


class HistoryError(RuntimeError):
    """The history cannot be read; the message names the file and line, or the topic."""


@dataclass
class History:
    """Events in arrival order (read lazily, once) and the directory's locations."""

    source: str
    locations: dict[str, Location]
    events: Iterator[Event]
    skipped: Counter[str] = field(default_factory=Counter)


def _parser() -> EventParser:
    # History is judged against its own time, not today's: no event is "in the future".
    return EventParser(future_tolerance=timedelta(days=3650))


def read_locations_csv(path: Path) -> dict[str, Location]:
    """The locations of a directory CSV (`locations.csv`, or a folder holding one)."""
    from services.ingest.directory_import import DirectoryImportError, read_records

    if path.is_dir():
        path = path / "locations.csv"
    try:
        _, records, problems = read_records(path, "locations")
    except (OSError, UnicodeDecodeError, DirectoryImportError) as exc:
        raise HistoryError(f"{path}: cannot read the directory's locations: {exc}") from exc
    if problems:
        raise HistoryError(f"{path}: {problems[0]} ({len(problems)} problem(s) in the directory file)")
    return {r.location_id: r for r in records if isinstance(r, Location)}


def default_directory(events_file: Path) -> Path:
    return events_file.parent / "locations.csv"


def _file_events(fh: TextIO, path: Path, skipped: Counter[str]) -> Iterator[Event]:
    parser = _parser()
    with fh:
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield parser.parse_json(line)
                except ValidationError as exc:
                    if any(e["type"] == "json_invalid" for e in exc.errors(include_input=False)):
                        raise HistoryError(f"{path}: line {number}: not JSON, so not an NDJSON event file") from exc
                    skipped["invalid_event"] += 1
        except (OSError, UnicodeDecodeError) as exc:
            raise HistoryError(f"{path}: cannot read the events: {exc}") from exc


def from_file(events_file: Path, directory: Path | None = None) -> History:
    """A simulator file; the locations from `directory` (a `locations.csv` or the folder
    holding it), by default the `locations.csv` next to the events file."""
    where = directory if directory is not None else default_directory(events_file)
    if directory is None and not where.exists():
        raise HistoryError(
            f"no directory for {events_file}: {where} does not exist; pass --directory with the folder "
            "`caresignal simulate --directory` wrote (or its locations.csv)"
        )
    locations = read_locations_csv(where)
    try:
        fh = events_file.open(encoding="utf-8")
    except OSError as exc:
        raise HistoryError(f"{events_file}: cannot read the events: {exc.strerror}") from exc
    skipped: Counter[str] = Counter()
    return History(f"{events_file} (directory {where})", locations, _file_events(fh, events_file, skipped), skipped)


# --- Kafka ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    timestamp: int
    key: bytes | None
    value: bytes | None


def _read_topic(
    kafka: KafkaSettings, topic: str, poll_ms: int = 500, stall_s: float = 60.0
) -> dict[int, list[_Record]]:
    """Every record of a topic, per partition, from the beginning to the end offsets it had
    when reading started (records written meanwhile are left for another run)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="caresignal-policy-compare",
            **kafka.security.kafka_python(),
        )
    except KafkaError as exc:
        raise HistoryError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}") from exc
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise HistoryError(f"topic {topic} does not exist on {kafka.bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        out: dict[int, list[_Record]] = {tp.partition: [] for tp in assigned}
        pending = {tp for tp in assigned if consumer.position(tp) < ends[tp]}
        progress = time.monotonic()
        while pending:
            for tp, batch in consumer.poll(timeout_ms=poll_ms).items():
                progress = time.monotonic()
                for record in batch:
                    if record.offset < ends[tp]:
                        out[tp.partition].append(_Record(record.timestamp, record.key, record.value))
            pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
            if pending and time.monotonic() - progress > stall_s:
                # A broker gone away would otherwise keep the command polling for ever.
                raise HistoryError(f"reading topic {topic} stalled: nothing came for {stall_s:.0f} s")
        return out
    except KafkaError as exc:
        raise HistoryError(f"cannot read topic {topic}: {exc}") from exc
    finally:
        consumer.close()


def _topic_locations(records: dict[int, list[_Record]], skipped: Counter[str]) -> dict[str, Location]:
    """The compacted topic's latest record per key; a tombstone removes the location."""
    latest: dict[bytes, bytes | None] = {}
    for partition in sorted(records):
        for record in records[partition]:
            if record.key is not None:
                latest[record.key] = record.value
    locations: dict[str, Location] = {}
    for key, value in latest.items():
        if value is None:
            continue
        try:
            location = Location.model_validate_json(value)
        except ValidationError:
            skipped["invalid_location"] += 1
            continue
        if key.decode(errors="replace") != location.location_id:
            skipped["location_key_mismatch"] += 1
            continue
        locations[location.location_id] = location
    return locations


def _partition_events(
    records: list[_Record], parser: EventParser, skipped: Counter[str]
) -> Iterator[tuple[tuple[int, datetime], Event]]:
    for record in records:
        if is_time_signal(record.key):
            skipped["time_signal"] += 1
            continue
        if record.value is None:
            skipped["invalid_event"] += 1
            continue
        try:
            event = parser.parse_json(record.value)
        except ValidationError:
            skipped["invalid_event"] += 1
            continue
        if record.key is None or record.key.decode(errors="replace") != event.subject:
            skipped["key_mismatch"] += 1
            continue
        yield (record.timestamp, event.time), event


def _topic_events(records: dict[int, list[_Record]], skipped: Counter[str]) -> Iterator[Event]:
    """The partitions merged by record timestamp, then event time (a producer sends many
    records in one millisecond), each partition kept in its own order: the order in which
    they arrived, as near as the topic tells. Parsed as the merge reaches them."""
    parser = _parser()
    partitions = [_partition_events(records[p], parser, skipped) for p in sorted(records)]
    for _, event in heapq.merge(*partitions, key=lambda item: item[0]):
        yield event


def from_kafka(kafka: KafkaSettings) -> History:
    skipped: Counter[str] = Counter()
    locations = _topic_locations(_read_topic(kafka, kafka.topics.locations), skipped)
    events = _read_topic(kafka, kafka.topics.events)
    return History(
        f"topics {kafka.topics.events} and {kafka.topics.locations} on {kafka.bootstrap_servers}",
        locations,
        _topic_events(events, skipped),
        skipped,
    )
