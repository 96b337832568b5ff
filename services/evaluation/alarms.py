"""Every detector's output in one shape: per location, the intervals it is at or above a
level, in days from the start of the run.

Pure. The policy's level changes become intervals at each level; the baselines (count
rules, the own-history detector) give theirs directly. An interval's start is an *entry*
(an alert at that level); one that is still open at the end of the run ends there.
Intervals of one location are sorted, and merged where one ends as the next starts (a
fall and a rise at one instant are not a new alert).
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from schemas.risk import Level
from services.evaluation.changes import Change

DAY_S = 86_400.0
Interval = tuple[float, float]
Alarms = Mapping[str, Sequence[Interval]]


def day_of(at: datetime, start: datetime) -> float:
    return (at - start).total_seconds() / DAY_S


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for on, off in sorted(intervals):
        if out and on <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], off))
        else:
            out.append((on, off))
    return out


def steps(changes: Iterable[Change], start: datetime) -> dict[str, list[tuple[float, Level]]]:
    """Per location, its level from each change on (days from `start`), in decision order."""
    out: dict[str, list[tuple[float, Level]]] = {}
    for change in sorted((c for c in changes if c.scope == "location"), key=lambda c: (c.time, c.sequence)):
        out.setdefault(change.subject, []).append((day_of(change.time, start), change.new))
    return out


def at_or_above(
    levels: Mapping[str, Sequence[tuple[float, Level]]], level: Level, end: float
) -> dict[str, list[Interval]]:
    """The intervals each location spends at `level` or above, up to `end`."""
    out: dict[str, list[Interval]] = {}
    for subject, points in levels.items():
        intervals: list[Interval] = []
        on: float | None = None
        for t, new in points:
            if new >= level and on is None:
                on = t
            elif new < level and on is not None:
                intervals.append((on, t))
                on = None
        if on is not None:
            intervals.append((on, max(on, end)))
        if intervals:
            out[subject] = merge_intervals(intervals)
    return out


def time_at(points: Sequence[tuple[float, Level]], level: Level, start: float, end: float) -> float:
    """Days a location spends at exactly `level` within [start, end]."""
    total = 0.0
    current, since = Level.none, 0.0
    for t, new in [*points, (end, Level.none)]:
        t = min(t, end)
        if current == level:
            total += max(0.0, t - max(since, start))
        current, since = new, t
        if t >= end:
            break
    return total


def overlap(intervals: Sequence[Interval], start: float, end: float) -> float:
    return sum(max(0.0, min(off, end) - max(on, start)) for on, off in intervals)


def on_during(intervals: Sequence[Interval], start: float, end: float) -> bool:
    """At the level at some time in [start, end]."""
    return any(on <= end and off > start for on, off in intervals) or any(on == off == start for on, off in intervals)


def first_entry(intervals: Sequence[Interval], after: float, until: float) -> float | None:
    """The first entry in (after, until]."""
    return next((on for on, _ in intervals if after < on <= until), None)
