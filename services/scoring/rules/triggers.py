"""Triggers: one event of a kind sets a level by itself and holds it for `hold_days`."""

from bisect import bisect_right
from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Trigger
from services.scoring.rules.base import Hit, Step, next_edge
from services.scoring.timeline import days_us


class Triggers:
    def __init__(self, triggers: list[Trigger], bits: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.hold_days), Level[r.level]) for r in triggers]

    def due(self, step: Step) -> int | None:
        by_rule = step.timeline.by_rule
        edges = (next_edge(by_rule[bit], step.t, hold) for _, bit, hold, _ in self._rules)
        return min((e for e in edges if e is not None), default=None)

    def evaluate(self, step: Step) -> None:
        t, by_rule = step.t, step.timeline.by_rule
        for rule, bit, hold, level in self._rules:
            times = by_rule[bit]
            # Any event of the kind in (t - hold, t]: the newest at or before t is inside.
            at = bisect_right(times, t)
            if not at or times[at - 1] <= t - hold:
                continue
            step.fire(level)
            if step.explain:
                count = at - bisect_right(times, t - hold)
                step.hits.append(Hit(rule.id, "trigger", level, rule.description, count, "tag", bit, t - hold, t))
