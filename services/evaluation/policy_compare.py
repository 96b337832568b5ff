"""Two policies' level changes over the same history, side by side: where levels differ,
from when, and by which rules. Pure: two lists of changes in, a comparison out.

A subject's levels under a policy are a step function of time built from its changes.
Changes at the same instant are taken together (the level after the last of them), so an
escalation and a fall decided at one event time leave no step. Two policies agree on a
subject when their steps have the same times and levels; where they first part, the
comparison gives that time, each side's level then, and each side's change at that
point of its sequence (the one that makes the difference, or the one it makes instead,
maybe later), with its rules. Subjects whose steps agree but whose rules differ at some
step are reported too, as reason differences.

Escalations "added" and "removed" are counted per location: a location that crosses into
Moderate+ twice under the new policy and once under the old one adds one. A crossing that
only moves in time (earlier or later) is neither; it shows as a level difference.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from schemas.risk import Level
from services.evaluation.changes import Change, Scope

Kind = Literal["levels", "reasons"]


@dataclass(frozen=True)
class Step:
    """A subject's level from `time` on; `change` is the last change decided at `time`."""

    time: datetime
    level: Level
    change: Change


@dataclass(frozen=True)
class Difference:
    scope: Scope
    subject: str
    kind: Kind
    # The first time the two policies' levels differ (kind "levels"), or the time of the
    # first step whose rules differ (kind "reasons").
    time: datetime
    old_level: Level
    new_level: Level
    # Each side's change at the point where the sequences part; None when that side makes
    # no further change. It may be later than `time` (the other side moved first).
    old_change: Change | None
    new_change: Change | None
    old_changes: int
    new_changes: int


@dataclass(frozen=True)
class Crossings:
    """Escalations into Moderate or Major from below it, and into Major from below it."""

    moderate_plus: int = 0
    major: int = 0

    def __add__(self, other: "Crossings") -> "Crossings":
        return Crossings(self.moderate_plus + other.moderate_plus, self.major + other.major)

    def __sub__(self, other: "Crossings") -> "Crossings":
        return Crossings(self.moderate_plus - other.moderate_plus, self.major - other.major)

    def positive(self) -> "Crossings":
        return Crossings(max(self.moderate_plus, 0), max(self.major, 0))


@dataclass
class Summary:
    locations: int  # locations in the period: the directory's and any with a change
    locations_changed: int  # with at least one change under either policy
    locations_levels_differ: int
    locations_reasons_differ: int
    organisations_changed: int
    organisations_levels_differ: int
    organisations_reasons_differ: int
    escalations_old: Crossings
    escalations_new: Crossings
    # Per location, crossings under the new policy beyond the old one's, and short of it.
    escalations_added: Crossings
    escalations_removed: Crossings
    # Location-days at each level in [start, end] under each policy.
    days_old: dict[Level, float] = field(default_factory=dict)
    days_new: dict[Level, float] = field(default_factory=dict)


@dataclass
class Comparison:
    start: datetime
    end: datetime
    summary: Summary
    differences: list[Difference]


def _initial(changes: Sequence[Change]) -> Level:
    """The level before a subject's first change (none, unless a history starts raised)."""
    first = min(changes, key=lambda c: (c.time, c.sequence), default=None)
    return first.old if first is not None else Level.none


def steps(changes: Sequence[Change]) -> list[Step]:
    """One subject's changes as level steps: same-instant changes merged, no-op steps dropped."""
    initial = _initial(changes)
    out: list[Step] = []
    for change in sorted(changes, key=lambda c: (c.time, c.sequence)):
        if out and out[-1].time == change.time:
            out.pop()  # the instant's level is its last change's
        if change.new != (out[-1].level if out else initial):
            out.append(Step(change.time, change.new, change))
    return out


def level_at(path: Sequence[Step], at: datetime, initial: Level = Level.none) -> Level:
    level = initial
    for step in path:
        if step.time > at:
            break
        level = step.level
    return level


def difference(scope: Scope, subject: str, old: Sequence[Change], new: Sequence[Change]) -> Difference | None:
    """Where one subject's levels (or, failing that, reasons) first differ; None if nowhere."""
    old_steps, new_steps = steps(old), steps(new)
    old_initial, new_initial = _initial(old), _initial(new)
    for i in range(max(len(old_steps), len(new_steps))):
        a = old_steps[i] if i < len(old_steps) else None
        b = new_steps[i] if i < len(new_steps) else None
        if a is not None and b is not None and (a.time, a.level) == (b.time, b.level):
            continue
        at = min(s.time for s in (a, b) if s is not None)
        return Difference(
            scope=scope,
            subject=subject,
            kind="levels",
            time=at,
            old_level=level_at(old_steps, at, old_initial),
            new_level=level_at(new_steps, at, new_initial),
            old_change=a.change if a is not None else None,
            new_change=b.change if b is not None else None,
            old_changes=len(old),
            new_changes=len(new),
        )
    for a, b in zip(old_steps, new_steps, strict=True):
        if set(a.change.rules) != set(b.change.rules):
            return Difference(
                scope, subject, "reasons", a.time, a.level, b.level, a.change, b.change, len(old), len(new)
            )
    return None


def crossings(path: Sequence[Step], initial: Level = Level.none) -> Crossings:
    moderate_plus = major = 0
    before = initial
    for step in path:
        if before < Level.moderate <= step.level:
            moderate_plus += 1
        if before < Level.major == step.level:
            major += 1
        before = step.level
    return Crossings(moderate_plus, major)


def level_days(path: Sequence[Step], start: datetime, end: datetime, initial: Level = Level.none) -> dict[Level, float]:
    """Days at each level in [start, end], the level before the first step being `initial`."""
    days = dict.fromkeys(Level, 0.0)
    level, since = initial, start
    for step in path:
        at = min(max(step.time, start), end)
        days[level] += (at - since).total_seconds() / 86_400
        level, since = step.level, at
    days[level] += (end - since).total_seconds() / 86_400 if end > since else 0.0
    return days


def _by_subject(changes: Iterable[Change]) -> dict[tuple[Scope, str], list[Change]]:
    out: dict[tuple[Scope, str], list[Change]] = defaultdict(list)
    for change in changes:
        out[(change.scope, change.subject)].append(change)
    return out


def compare(
    old: Iterable[Change],
    new: Iterable[Change],
    *,
    start: datetime,
    end: datetime,
    locations: Iterable[str] = (),
) -> Comparison:
    """The differences between two policies' changes over the period [start, end].

    `locations` are the locations the history covers: those with no change under either
    policy count as location-days at none under both."""
    old_by, new_by = _by_subject(old), _by_subject(new)
    subjects = sorted(set(old_by) | set(new_by))
    differences: list[Difference] = []
    days_old = dict.fromkeys(Level, 0.0)
    days_new = dict.fromkeys(Level, 0.0)
    total_old = total_new = added = removed = Crossings()
    for scope, subject in subjects:
        a, b = old_by.get((scope, subject), []), new_by.get((scope, subject), [])
        found = difference(scope, subject, a, b)
        if found is not None:
            differences.append(found)
        if scope != "location":
            continue
        a_steps, b_steps = steps(a), steps(b)
        ca, cb = crossings(a_steps, _initial(a)), crossings(b_steps, _initial(b))
        total_old += ca
        total_new += cb
        added += (cb - ca).positive()
        removed += (ca - cb).positive()
        for total, path, changes in ((days_old, a_steps, a), (days_new, b_steps, b)):
            for level, days in level_days(path, start, end, _initial(changes)).items():
                total[level] += days
    changed = {subject for scope, subject in subjects if scope == "location"}
    quiet = set(locations) - changed
    period = max((end - start).total_seconds(), 0.0) / 86_400
    days_old[Level.none] += period * len(quiet)
    days_new[Level.none] += period * len(quiet)
    differences.sort(key=lambda d: (d.scope != "location", d.kind != "levels", d.time, d.subject))

    def count(scope: Scope, kind: Kind) -> int:
        return sum(1 for d in differences if d.scope == scope and d.kind == kind)

    summary = Summary(
        locations=len(changed | quiet),
        locations_changed=len(changed),
        locations_levels_differ=count("location", "levels"),
        locations_reasons_differ=count("location", "reasons"),
        organisations_changed=sum(1 for scope, _ in subjects if scope == "organisation"),
        organisations_levels_differ=count("organisation", "levels"),
        organisations_reasons_differ=count("organisation", "reasons"),
        escalations_old=total_old,
        escalations_new=total_new,
        escalations_added=added,
        escalations_removed=removed,
        days_old=days_old,
        days_new=days_new,
    )
    return Comparison(start=start, end=end, summary=summary, differences=differences)
