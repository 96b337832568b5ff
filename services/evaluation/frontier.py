"""A baseline swept over its settings: its precision-recall frontier, and what it does at
a given precision.

Pure. Each setting (`Point`) has a precision, a recall within 270 days and a median time
to detect. The frontier keeps the settings no other beats on both precision and recall;
the time to detect is read along it. `matched` answers "at the policy's precision, what
recall and time would this baseline have?": linear interpolation (recall, recall within
90 days, median days, each kind's recall) between the two frontier points whose
precisions bracket the policy's. Where none brackets it, it takes the nearest frontier
point and says so: the most precise setting when even that is less precise than the
policy (the baseline cannot reach the policy's precision), the least precise one when
even that is more precise (its recall is then a lower bound for the baseline).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise


@dataclass(frozen=True)
class Point:
    detector: str
    family: str
    label: str
    precision: float
    recall: float  # within 270 days
    recall90: float
    median_days: float | None
    kinds: Mapping[str, float | None] = field(default_factory=dict)  # recall within 270 per kind
    kind_days: Mapping[str, float | None] = field(default_factory=dict)  # median days per kind


def pareto(points: Sequence[Point]) -> list[Point]:
    """The frontier, in rising precision (so falling recall). Of equal points, the sooner."""
    best: list[Point] = []
    ordered = sorted(
        points, key=lambda p: (-p.precision, -p.recall, p.median_days if p.median_days is not None else 1e9)
    )
    for p in ordered:
        if not best or p.recall > best[-1].recall:
            best.append(p)
    return best[::-1]


@dataclass(frozen=True)
class Match:
    precision: float  # the policy's, or the taken point's where nothing brackets it
    recall: float
    recall90: float
    median_days: float | None
    kinds: Mapping[str, float | None]
    kind_days: Mapping[str, float | None]
    method: str  # how it was read, naming the settings


def _mix(a: float | None, b: float | None, w: float) -> float | None:
    if a is None or b is None:
        return a if b is None else b if a is None else None
    return a + w * (b - a)


def _point(p: Point, method: str) -> Match:
    return Match(
        p.precision, p.recall, p.recall90, p.median_days, dict(p.kinds), dict(p.kind_days), f"{method} ({p.label})"
    )


def matched(frontier: Sequence[Point], precision: float) -> Match | None:
    if not frontier:
        return None
    if precision > frontier[-1].precision:
        return _point(frontier[-1], "most precise setting, less precise than the policy")
    if precision < frontier[0].precision:
        return _point(frontier[0], "least precise setting, more precise than the policy")
    for lo, hi in pairwise(frontier):
        if lo.precision <= precision <= hi.precision:
            w = (precision - lo.precision) / (hi.precision - lo.precision) if hi.precision > lo.precision else 0.0
            kinds = {k: _mix(lo.kinds.get(k), hi.kinds.get(k), w) for k in {*lo.kinds, *hi.kinds}}
            days = {k: _mix(lo.kind_days.get(k), hi.kind_days.get(k), w) for k in {*lo.kind_days, *hi.kind_days}}
            recall, recall90 = _mix(lo.recall, hi.recall, w), _mix(lo.recall90, hi.recall90, w)
            assert recall is not None and recall90 is not None
            return Match(
                precision,
                recall,
                recall90,
                _mix(lo.median_days, hi.median_days, w),
                kinds,
                days,
                f"interpolated between {lo.label} and {hi.label}",
            )
    return _point(frontier[0], "the only setting")


def recall_at(precisions: Sequence[float], recalls: Sequence[float], precision: float) -> float:
    """`matched`'s recall for bare numbers (the bootstrap's resamples)."""
    points = [Point("", "", "", p, r, r, None) for p, r in zip(precisions, recalls, strict=True)]
    found = matched(pareto(points), precision)
    return found.recall if found is not None else float("nan")
