"""The same measures for every detector at one level, from its alarm intervals.

Pure. `World` reads a run's ground truth once; `tally` scores one detector's intervals at
a level against it (counts only, so pooled figures are sums of counts over scenarios);
`figures` turns pooled tallies into rates. A binary detector (a count rule, the
own-history detector) has one set of intervals for both levels; only which planted
trajectories count differs: at Moderate+ those the truth expects at Moderate or above,
at Minor+ every one. Definitions are in docs/evaluation.md ("The measures").
"""

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.risk import Level
from services.evaluation.alarms import Alarms, first_entry, on_during, overlap

WINDOWS = (90.0, 270.0)
# An escalation within this many days after a genuine severe event at its location is
# about that event (the longest trigger hold of the default policy; ESTIMATE for others).
SEVERE_DAYS = 180.0
MONTH_DAYS = 365.25 / 12
ORDINARY = "ordinary"


def _day(text: str | None, start: datetime) -> float | None:
    if not text:
        return None
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - start).total_seconds() / 86_400.0


@dataclass(frozen=True)
class Planted:
    id: str
    kind: str
    locations: tuple[str, ...]
    start: float
    active_end: float  # when it recovered (a recovery, a short burst), else the end of the run
    expected: Level  # before any planted severe event
    cluster: str


@dataclass(frozen=True)
class World:
    """A run's ground truth, in days from its start."""

    scenario: str
    days: float
    planted: tuple[Planted, ...]
    ordinary: tuple[str, ...]
    quiet: tuple[str, ...]  # ordinary locations with no severe event
    severe: Mapping[str, tuple[float, ...]]  # every severe event per location
    genuine: tuple[tuple[str, float, str], ...]  # severe events at ordinary locations: where, when, id
    by_location: Mapping[str, tuple[Planted, ...]]

    @classmethod
    def from_truth(cls, scenario: str, truth: Mapping[str, Any]) -> "World":
        start = datetime.fromisoformat(truth["start"].replace("Z", "+00:00"))
        days = _day(truth["end"], start)
        assert days is not None
        planted = []
        for t in truth["trajectories"]:
            begin = _day(t["start"], start)
            assert begin is not None
            recovered = _day(t.get("recovered"), start)
            expected = Level[t.get("expected_level_before_major") or t["expected_min_level"]]
            cluster = f"{scenario}/{t['id']}"
            planted.append(
                Planted(t["id"], t["kind"], tuple(t["locations"]), begin, recovered or days, expected, cluster)
            )
        severe: dict[str, list[float]] = {}
        genuine = []
        for event in truth["severe_events"]:
            at = _day(event["time"], start)
            assert at is not None
            severe.setdefault(event["location_id"], []).append(at)
            if not event["in_trajectory"]:
                genuine.append((event["location_id"], at, event["event_id"]))
        by_location: dict[str, list[Planted]] = {}
        for p in planted:
            for loc in p.locations:
                by_location.setdefault(loc, []).append(p)
        ordinary = tuple(truth["ordinary_locations"])
        return cls(
            scenario=scenario,
            days=days,
            planted=tuple(planted),
            ordinary=ordinary,
            quiet=tuple(loc for loc in ordinary if loc not in severe),
            severe={k: tuple(v) for k, v in severe.items()},
            genuine=tuple(genuine),
            by_location={k: tuple(v) for k, v in by_location.items()},
        )

    def cluster_of(self, location: str) -> str:
        """The unit the bootstrap resamples: a planted trajectory's locations together."""
        mine = self.by_location.get(location)
        return mine[0].cluster if mine else f"{self.scenario}/{location}"

    def kind_of(self, location: str) -> str:
        mine = self.by_location.get(location)
        return mine[0].kind if mine else ORDINARY

    def alert_is_true(self, location: str, day: float) -> bool:
        """At a planted location within its active period, or soon after a severe event there."""
        if any(p.start <= day <= p.active_end for p in self.by_location.get(location, ())):
            return True
        return any(at <= day <= at + SEVERE_DAYS for at in self.severe.get(location, ()))


@dataclass(frozen=True)
class Case:
    """What a detector made of one planted trajectory at one level."""

    trajectory: str
    kind: str
    cluster: str
    expected: Level
    within: tuple[bool, ...]  # at the level some time in [start, start + w], per WINDOWS
    days: float | None  # to the first entry within the last window; None if none or elevated
    elevated: bool  # already at the level when it started


@dataclass
class Tally:
    """One detector at one level: counts, summable over scenarios."""

    cases: list[Case] = field(default_factory=list)
    alerts: Counter[str] = field(default_factory=Counter)  # per cluster
    true_alerts: Counter[str] = field(default_factory=Counter)
    kind_alerts: Counter[str] = field(default_factory=Counter)
    kind_true: Counter[str] = field(default_factory=Counter)
    false_ordinary_after_warmup: int = 0
    ordinary_days: float = 0.0  # ordinary locations x days after the warm-up
    quiet_days: float = 0.0  # the same, for those with no severe event
    quiet_days_at: float = 0.0  # ... of which at the level
    quiet_crossings: int = 0  # entries and exits of those, after the warm-up

    def add(self, other: "Tally") -> None:
        self.cases += other.cases
        for mine, theirs in (
            (self.alerts, other.alerts),
            (self.true_alerts, other.true_alerts),
            (self.kind_alerts, other.kind_alerts),
            (self.kind_true, other.kind_true),
        ):
            mine.update(theirs)
        self.false_ordinary_after_warmup += other.false_ordinary_after_warmup
        self.ordinary_days += other.ordinary_days
        self.quiet_days += other.quiet_days
        self.quiet_days_at += other.quiet_days_at
        self.quiet_crossings += other.quiet_crossings


def pooled(tallies: Iterable[Tally]) -> Tally:
    out = Tally()
    for t in tallies:
        out.add(t)
    return out


def tally(world: World, alarms: Alarms, warmup_days: float) -> Tally:
    """Score one detector's intervals (at one level) against the truth."""
    out = Tally()
    empty: Sequence[tuple[float, float]] = ()
    last = WINDOWS[-1]
    for p in world.planted:
        spans = [alarms.get(loc, empty) for loc in p.locations]
        elevated = any(on <= p.start < off for s in spans for on, off in s)
        within = tuple(any(on_during(s, p.start, min(p.start + w, p.active_end)) for s in spans) for w in WINDOWS)
        firsts = [first_entry(s, p.start, min(p.start + last, p.active_end)) for s in spans]
        found = [f for f in firsts if f is not None]
        days = min(found) - p.start if found and not elevated else None
        out.cases.append(Case(p.id, p.kind, p.cluster, p.expected, within, days, elevated))
    warm = min(warmup_days, world.days)
    ordinary = set(world.ordinary)
    for location, intervals in alarms.items():
        cluster, kind = world.cluster_of(location), world.kind_of(location)
        for on, _ in intervals:
            true = world.alert_is_true(location, on)
            out.alerts[cluster] += 1
            out.kind_alerts[kind] += 1
            if true:
                out.true_alerts[cluster] += 1
                out.kind_true[kind] += 1
            elif location in ordinary and on >= warm:
                out.false_ordinary_after_warmup += 1
    observed = world.days - warm
    out.ordinary_days = len(world.ordinary) * observed
    out.quiet_days = len(world.quiet) * observed
    for location in world.quiet:
        intervals = alarms.get(location, empty)
        out.quiet_days_at += overlap(intervals, warm, world.days)
        out.quiet_crossings += sum(warm < on for on, _ in intervals) + sum(
            warm < off < world.days for _, off in intervals
        )
    return out


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile by linear interpolation between closest ranks (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    lo = int(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(frozen=True)
class Figures:
    """Rates at one level; a kind's row leaves the ordinary-location figures None."""

    planted: int
    recall: tuple[float | None, ...]  # per WINDOWS
    alerts: int
    precision: float | None
    median_days: float | None
    p90_days: float | None
    elevated: int
    ordinary_share: float | None = None
    false_per_100_month: float | None = None
    flapping_per_90: float | None = None

    @property
    def recall90(self) -> float | None:
        return self.recall[0]

    @property
    def recall270(self) -> float | None:
        return self.recall[-1]


def _case_figures(cases: Sequence[Case]) -> tuple[int, tuple[float | None, ...], float | None, float | None, int]:
    days = [c.days for c in cases if c.days is not None]
    recall = tuple(_ratio(sum(c.within[i] for c in cases), len(cases)) for i in range(len(WINDOWS)))
    return len(cases), recall, median(days), percentile(days, 0.9), sum(c.elevated for c in cases)


def counted(cases: Iterable[Case], level: Level) -> list[Case]:
    """The trajectories recall counts at `level`: those the truth expects there or above."""
    return [c for c in cases if c.expected >= level]


def figures(t: Tally, level: Level) -> Figures:
    planted, recall, med, p90, elevated = _case_figures(counted(t.cases, level))
    alerts, true = sum(t.alerts.values()), sum(t.true_alerts.values())
    months = t.ordinary_days / MONTH_DAYS
    return Figures(
        planted=planted,
        recall=recall,
        alerts=alerts,
        precision=_ratio(true, alerts),
        median_days=med,
        p90_days=p90,
        elevated=elevated,
        ordinary_share=_ratio(t.quiet_days_at, t.quiet_days),
        false_per_100_month=_ratio(t.false_ordinary_after_warmup * 100, months),
        flapping_per_90=_ratio(t.quiet_crossings * 90, t.quiet_days),
    )


def kind_figures(t: Tally, level: Level) -> dict[str, Figures]:
    """Per kind of deterioration: recall over its trajectories counted at `level`, and
    precision over the alerts at its locations (`ordinary`: at the others)."""
    cases = counted(t.cases, level)
    kinds = sorted({c.kind for c in cases})
    out = {}
    for kind in kinds:
        planted, recall, med, p90, elevated = _case_figures([c for c in cases if c.kind == kind])
        alerts = t.kind_alerts[kind]
        out[kind] = Figures(planted, recall, alerts, _ratio(t.kind_true[kind], alerts), med, p90, elevated)
    alerts = t.kind_alerts[ORDINARY]
    out[ORDINARY] = Figures(0, (None,) * len(WINDOWS), alerts, _ratio(t.kind_true[ORDINARY], alerts), None, None, 0)
    return out
