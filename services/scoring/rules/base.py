"""What every evaluator takes and gives: the step's inputs, and hits that explain
themselves only when asked (building reasons for every step would cost more than
evaluating the rules)."""

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec

from schemas.directory import Location
from schemas.risk import Family, Level
from services.scoring.rules.peer_stats import PeerStats
from services.scoring.timeline import Timeline

# Which items a hit's explanation lists: those with a rule's tag, the weighted ones, the
# concerns, in (start, end]; or the named items (ratings); or none (a hold).
Selector = Literal["tag", "weighted", "concerns", "named", "tags", "none"]


class Hit(msgspec.Struct, array_like=True, frozen=True):
    """A rule that fired at a step. Kept in the state for the current level, so that its
    reasons can be built later from the same timeline (`engine.reasons`)."""

    rule_id: str
    family: Family
    level: Level
    description: str
    measure: float | None
    selector: Selector = "none"
    bit: int = 0
    start: int = 0
    end: int = 0
    named: tuple[tuple[str, str], ...] = ()


class History(msgspec.Struct, array_like=True, frozen=True):
    """What hysteresis needs to remember between steps; `hits` explain the last one."""

    level: Level = Level.none
    since: int | None = None
    active: frozenset[str] = frozenset()
    accumulation_band: Level = Level.none
    triangulation_level: Level = Level.none
    at: int | None = None
    score: float = 0.0
    hits: tuple[Hit, ...] = ()


# (peer rule id, service type) -> stats over every location of that type.
PeerView = Mapping[tuple[str, str], PeerStats]


@dataclass(slots=True)
class Step:
    """One evaluation at time t: the inputs every evaluator reads, and what they found."""

    t: int
    timeline: Timeline
    previous: History
    location: Location | None
    observed_days: float
    peers: PeerView
    own_peer_rates: Mapping[str, tuple[str, float]]
    # Only an explained step keeps its hits (and builds their descriptions): the steps of
    # a replay before the last need only the highest level and the active rules.
    explain: bool = False
    # Shared by every step of one assessment: what does not change between its steps.
    memo: dict[object, Any] = field(default_factory=dict)
    # How far back evidence is kept: a rule looking back from an earlier sample must not
    # count on evidence the retention may already have dropped.
    retention_us: int = 0
    top: Level = Level.none
    hits: list[Hit] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    accumulation_band: Level = Level.none
    triangulation_level: Level = Level.none
    score: float = 0.0

    def fire(self, level: Level) -> None:
        if level > self.top:
            self.top = level

    @property
    def capacity(self) -> int | None:
        return self.location.capacity if self.location is not None else None


# A time from which a family's answer may change with no new event, when it may change
# at every moment (continuous): the scheduler re-evaluates after this long at the latest.
CONTINUOUS_US = 86_400_000_000


def next_edge(times: list[int], t: int, window: int) -> int | None:
    """When the oldest of these times inside (t - window, t] leaves the window."""
    at = bisect_right(times, t - window)
    if at < len(times) and times[at] <= t:
        return times[at] + window
    return None


def later(edge: int | None, by: int) -> int | None:
    """An edge computed for a window ending `by` earlier (a baseline before a recent
    window), moved to when it passes."""
    return None if edge is None else edge + by


class Evaluator(Protocol):
    def evaluate(self, step: Step) -> None:
        """Add the family's hits (and any state it carries) to the step."""

    def due(self, step: Step) -> int | None:
        """The earliest time after `step.t` at which this family's answer could change
        with no new event (a window's edge passing its oldest event, a score decaying
        through a threshold); None if it cannot."""
