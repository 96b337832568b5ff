"""The count-only family: "N or more concerns in W days" over a grid of N and W, as an
absolute count or per unit of capacity.

Pure. What a concern is stays `baseline.is_concern`; `baseline.CountBaseline` is the one
member the earlier reports used (3 in 90 days, absolute). Alarm intervals are exact in
event time: a location is alarmed from the concern that brings the count in (t - W, t]
to the threshold until the window slides past the oldest of them; a concern arriving as
another leaves keeps the alarm (no flap).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.evaluation.alarms import Interval

ABSOLUTE_THRESHOLDS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15)
PER_CAPACITY_RATES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # concerns per 10 beds or people
WINDOWS = (30.0, 60.0, 90.0, 180.0, 365.0)
# Per capacity, a service of a few beds would be alarmed by one concern; two is the
# least any per-capacity rule here asks for (ESTIMATE: a council would not call one
# concern a pattern at any size).
PER_CAPACITY_FLOOR = 2


@dataclass(frozen=True)
class CountRule:
    window: float
    threshold: int | None = None  # absolute: this many concerns
    per_10: float | None = None  # per capacity: this many per 10 beds or people, at least the floor

    @property
    def family(self) -> str:
        return "absolute" if self.threshold is not None else "per capacity"

    @property
    def label(self) -> str:
        if self.threshold is not None:
            return f"{self.threshold} in {self.window:g} d"
        return f"{self.per_10:g}/10 cap. in {self.window:g} d"

    def threshold_for(self, capacity: int) -> int:
        if self.threshold is not None:
            return self.threshold
        assert self.per_10 is not None
        return max(PER_CAPACITY_FLOOR, math.ceil(self.per_10 * capacity / 10 - 1e-9))


def grid() -> list[CountRule]:
    rules = [CountRule(w, threshold=n) for w in WINDOWS for n in ABSOLUTE_THRESHOLDS]
    return rules + [CountRule(w, per_10=r) for w in WINDOWS for r in PER_CAPACITY_RATES]


def count_intervals(times: Sequence[float], threshold: int, window: float, end: float) -> list[Interval]:
    """Where at least `threshold` of `times` (sorted) lie in (t - window, t], up to `end`."""
    out: list[Interval] = []
    for j in range(threshold - 1, len(times)):
        on, off = times[j], min(times[j - threshold + 1] + window, end)
        if on >= off:
            continue
        if out and on <= out[-1][1]:
            out[-1] = (out[-1][0], off)
        else:
            out.append((on, off))
    return out


def rule_alarms(
    rule: CountRule,
    concern_times: Sequence[Sequence[float]],
    capacities: Sequence[int],
    locations: Sequence[str],
    end: float,
) -> dict[str, list[Interval]]:
    out: dict[str, list[Interval]] = {}
    for loc, times, capacity in zip(locations, concern_times, capacities, strict=True):
        intervals = count_intervals(times, rule.threshold_for(capacity), rule.window, end)
        if intervals:
            out[loc] = intervals
    return out
