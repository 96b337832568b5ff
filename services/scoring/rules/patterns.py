"""Patterns: a count of a kind of event in a window, absolute or per capacity, with
hysteresis (a pattern that is active stays so down to its exit threshold)."""

from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Pattern
from services.scoring.rules.base import Hit, Step
from services.scoring.timeline import days_us


class Patterns:
    def __init__(self, patterns: list[Pattern], bits: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.window_days), Level[r.level]) for r in patterns]

    def evaluate(self, step: Step) -> None:
        t, timeline, capacity = step.t, step.timeline, step.capacity
        for rule, bit, window, level in self._rules:
            count = timeline.tagged(bit, t - window, t)
            if not count:
                continue
            enter = rule.enter_threshold(capacity)
            was = rule.id in step.previous.active
            if count >= enter or (was and count >= rule.exit_threshold(capacity)):
                step.active.add(rule.id)
                description = rule.description
                if rule.per_capacity is not None:
                    description += (
                        f" ({count} in {rule.window_days:g} days; the threshold for its size is {enter}: "
                        f"{rule.enter_rate:g} per {rule.per_capacity:g}, at least {rule.enter_count})"
                    )
                step.hits.append(Hit(rule.id, "pattern", level, description, count, "tag", bit, t - window, t))
