"""Kafka topic names and their shapes: the one place every service takes them from."""

from dataclasses import dataclass, fields
from typing import Literal

from pydantic import ValidationError

TopicRole = Literal["events", "dead_letter", "locations", "placements", "authorities", "risk_changes"]


@dataclass(frozen=True)
class TopicSpec:
    partitions: int
    compacted: bool
    retention_ms: int | None = None


# Events are keyed by location ID; several partitions let scoring scale out by location.
# Directory topics are compacted: the latest record per key is the directory.
SPECS: dict[TopicRole, TopicSpec] = {
    "events": TopicSpec(partitions=6, compacted=False, retention_ms=400 * 24 * 3600 * 1000),
    "dead_letter": TopicSpec(partitions=1, compacted=False, retention_ms=90 * 24 * 3600 * 1000),
    # Same partition count as events: the scorer joins them by location ID (co-partitioned).
    "locations": TopicSpec(partitions=6, compacted=True),
    "placements": TopicSpec(partitions=3, compacted=True),
    "authorities": TopicSpec(partitions=1, compacted=True),
    "risk_changes": TopicSpec(partitions=6, compacted=False, retention_ms=400 * 24 * 3600 * 1000),
}


@dataclass(frozen=True)
class Topics:
    """The names of every topic, optionally under a prefix (one per test, or per tenant)."""

    events: str = "caresignal.events.v1"
    dead_letter: str = "caresignal.events.dead-letter.v1"
    locations: str = "caresignal.directory.locations.v1"
    placements: str = "caresignal.directory.placements.v1"
    authorities: str = "caresignal.directory.authorities.v1"
    risk_changes: str = "caresignal.risk-changes.v1"

    @classmethod
    def with_prefix(cls, prefix: str) -> "Topics":
        base = cls()
        if not prefix:
            return base
        return cls(**{f.name: f"{prefix}.{getattr(base, f.name)}" for f in fields(cls)})

    def by_role(self) -> dict[TopicRole, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[misc]


# Set by ingest on events sent with a key that may load history (a backfill). The scorer
# marks the level changes such events cause, and alerts does not notify them one by one:
# recipients are told a subject's current level once the backfill has settled.
BACKFILL_HEADER = "caresignal.backfill"


def dead_letter_headers(reason: str, detail: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Why a message was set aside, and where it came from: every service writes these."""
    return [
        ("caresignal.error.reason", reason.encode()),
        ("caresignal.error.detail", detail[:2000].encode()),
        ("caresignal.source.topic", topic.encode()),
        ("caresignal.source.partition", str(partition).encode()),
        ("caresignal.source.offset", str(offset).encode()),
    ]


def validation_problems(exc: ValidationError) -> str:
    """A dead letter's detail: each invalid field's path and why, never its value."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    )
