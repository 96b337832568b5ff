"""Patterns: a count of a kind of event in a window, absolute or per capacity, with
hysteresis (a pattern that is active stays so down to its exit threshold)."""

from bisect import bisect_right
from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Pattern
from services.scoring.rules.base import Hit, Step, next_edge
from services.scoring.timeline import days_us


class Patterns:
    def __init__(self, patterns: list[Pattern], bits: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.window_days), Level[r.level]) for r in patterns]
        # Thresholds depend only on the capacity: worked out once per size.
        self._thresholds: dict[int | None, list[tuple[int, int]]] = {}
        self._index = {r.id: i for i, (r, _, _, _) in enumerate(self._rules)}

    def _for(self, capacity: int | None) -> list[tuple[int, int]]:
        found = self._thresholds.get(capacity)
        if found is None:
            found = [(r.enter_threshold(capacity), r.exit_threshold(capacity)) for r, _, _, _ in self._rules]
            self._thresholds[capacity] = found
        return found

    def held(self, step: Step, rule_id: str, at: int) -> float | None:
        """The count at `at` if the pattern held then (at its leaving threshold, as an
        active pattern stays)."""
        index = self._index[rule_id]
        _, bit, window, _ = self._rules[index]
        leave = self._for(step.capacity)[index][1]
        count = step.timeline.tagged(bit, at - window, at)
        return float(count) if count >= leave else None

    def due(self, step: Step) -> int | None:
        by_rule = step.timeline.by_rule
        edges = (next_edge(by_rule[bit], step.t, window) for _, bit, window, _ in self._rules)
        return min((e for e in edges if e is not None), default=None)

    def evaluate(self, step: Step) -> None:
        t, by_rule, active = step.t, step.timeline.by_rule, step.previous.active
        thresholds = self._for(step.capacity)
        for (rule, bit, window, level), (enter, leave) in zip(self._rules, thresholds, strict=True):
            times = by_rule[bit]
            if len(times) < leave:
                continue
            count = bisect_right(times, t) - bisect_right(times, t - window)
            if count >= enter or (count >= leave and rule.id in active):
                step.active.add(rule.id)
                step.fire(level)
                if step.explain:
                    description = rule.description
                    if rule.per_capacity is not None:
                        description += (
                            f" ({count} in {rule.window_days:g} days; the threshold for its size is {enter}: "
                            f"{rule.enter_rate:g} per {rule.per_capacity:g}, at least {rule.enter_count})"
                        )
                    step.hits.append(Hit(rule.id, "pattern", level, description, count, "tag", bit, t - window, t))
