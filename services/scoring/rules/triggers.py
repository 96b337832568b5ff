"""Triggers: one event of a kind sets a level by itself and holds it for `hold_days`."""

from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Trigger
from services.scoring.rules.base import Hit, Step
from services.scoring.timeline import days_us


class Triggers:
    def __init__(self, triggers: list[Trigger], bits: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.hold_days), Level[r.level]) for r in triggers]

    def evaluate(self, step: Step) -> None:
        t, timeline = step.t, step.timeline
        for rule, bit, hold, level in self._rules:
            count = timeline.tagged(bit, t - hold, t)
            if count:
                step.hits.append(Hit(rule.id, "trigger", level, rule.description, count, "tag", bit, t - hold, t))
