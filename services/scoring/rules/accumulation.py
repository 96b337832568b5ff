"""Accumulation: low-level concerns weighted and halving with age, per capacity, in bands
with hysteresis; capped at the policy's `max_level` (Minor unless it says otherwise)."""

from schemas.risk import Level, LevelName
from services.scoring.policy import Accumulation
from services.scoring.rules.base import Hit, Step


class Accumulated:
    def __init__(self, rule: Accumulation, retention_us: int) -> None:
        self._rule = rule
        self._retention = retention_us
        self._max = Level[rule.max_level]
        self._enter = [(Level[name], value) for name, value in rule.enter.items()]
        self._unit = f" per {rule.per_capacity:g} beds or people" if rule.per_capacity is not None else ""

    def evaluate(self, step: Step) -> None:
        rule, t = self._rule, step.t
        start = t - self._retention
        score, _ = step.timeline.score(start, t)
        capacity = step.capacity
        if rule.per_capacity is not None and capacity is not None:
            score *= rule.per_capacity / max(capacity, rule.per_capacity)
        band = min(max((level for level, value in self._enter if score >= value), default=Level.none), self._max)
        for held in range(min(step.previous.accumulation_band, self._max), band, -1):
            threshold = rule.enter.get(LevelName(Level(held).name))
            if threshold is not None and score >= threshold * rule.exit_ratio:
                band = Level(held)
                break
        step.score = score
        step.accumulation_band = band
        if band > Level.none:
            step.fire(band)
            if step.explain:
                description = f"{rule.description} (score {score:.1f}{self._unit})"
                step.hits.append(Hit(rule.id, "accumulation", band, description, score, "weighted", 0, start, t))
