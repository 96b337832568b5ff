"""Risk levels and level changes: what scoring publishes and alerts consume."""

from enum import IntEnum, StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from schemas.events import Contract
from schemas.identifiers import LocationId, ProviderId


class Level(IntEnum):
    """Ordered, so that `max()` and comparisons mean "more severe"."""

    none = 0
    minor = 1
    moderate = 2
    major = 3

    @property
    def label(self) -> str:
        return self.name.capitalize() if self is not Level.none else "none"


class LevelName(StrEnum):
    none = "none"
    minor = "minor"
    moderate = "moderate"
    major = "major"


def level_of(name: str) -> Level:
    return Level[name]


class EvidenceRef(Contract):
    """An event behind a rule: its id, type and time. Never its content."""

    event_id: str
    source: str
    type: str
    time: AwareDatetime


Family = Literal[
    "trigger",
    "pattern",
    "rise",
    "peer",
    "accumulation",
    "triangulation",
    "rating",
    "organisation",
    "hold",
    "persistence",
    "closed_culture",
]


class RuleFiring(Contract):
    rule_id: str
    family: Family
    level: LevelName
    description: str
    # What the rule measured (a count, a score, a z-score...), to explain "how much".
    measure: float | None = None
    evidence_count: int = 0
    evidence: list[EvidenceRef] = []


class Action(Contract):
    action: str
    lead: str


class LevelChange(Contract):
    """One change of a location's (or an organisation's) risk level."""

    schema_version: Literal[1] = 1
    # Deterministic: "<location or provider>:<sequence>", the same however often the
    # input is replayed, so consumers can drop a redelivered change.
    change_id: Annotated[str, Field(min_length=1, max_length=200)]
    sequence: Annotated[int, Field(ge=1)]
    scope: Literal["location", "organisation"] = "location"
    location_id: LocationId | None = None
    provider_id: ProviderId | None = None
    # For an organisation-level change: its locations at Moderate or above.
    locations: list[LocationId] = []
    old_level: LevelName
    new_level: LevelName
    direction: Literal["escalation", "de-escalation"]
    score: float
    reasons: list[RuleFiring]
    actions: list[Action]
    meaning: str
    policy_version: str
    decided_at: AwareDatetime
    # Caused by loading history (events sent with a backfill key), or by time passing on
    # a location whose newest evidence came from one: a decision about the past, which
    # alerts records but does not send one by one.
    backfill: bool = False

    @property
    def key(self) -> str:
        return (self.location_id if self.scope == "location" else self.provider_id) or ""
