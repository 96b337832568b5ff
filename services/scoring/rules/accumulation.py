"""Accumulation: low-level concerns weighted and halving with age, per capacity, in bands
with hysteresis; capped at the policy's `max_level` (Minor unless it says otherwise)."""

import math

from schemas.risk import Level, LevelName
from services.scoring.policy import Accumulation
from services.scoring.rules.base import Hit, Step, next_edge

_WEEK_US = 7 * 86_400_000_000


class Accumulated:
    def __init__(self, rule: Accumulation, retention_us: int) -> None:
        self._rule = rule
        self._retention = retention_us
        self._max = Level[rule.max_level]
        self._enter = [(Level[name], value) for name, value in rule.enter.items()]
        self._unit = f" per {rule.per_capacity:g} beds or people" if rule.per_capacity is not None else ""

    def due(self, step: Step) -> int | None:
        """When the decaying score falls through the threshold that holds its band; the
        oldest weighted event leaving the retention (a step down of the score)."""
        timeline, t = step.timeline, step.t
        edges = [next_edge(timeline.weighted, t, self._retention)]
        band = step.previous.accumulation_band
        score = step.previous.score
        threshold = self._rule.enter.get(LevelName(band.name)) if band > Level.none else None
        if threshold is not None and score > 0 and timeline.half_life_us is not None:
            floor = threshold * self._rule.exit_ratio
            if score >= floor:
                half_lives = math.log2(score / floor)
                # At least a minute on: the stored score is rounded, so the fall can come
                # a moment after the time worked out from it.
                edges.append(t + max(60_000_000, math.ceil(half_lives * timeline.half_life_us)))
        return min((e for e in edges if e is not None), default=None)

    def _score(self, step: Step, at: int, start: int) -> float:
        rule = self._rule
        score, _ = step.timeline.score(start, at)
        capacity = step.capacity
        if rule.per_capacity is not None and capacity is not None:
            score *= rule.per_capacity / max(capacity, rule.per_capacity)
        return score

    def held(self, step: Step, rule_id: str, at: int) -> float | None:
        """The score at `at` if it was then in its lowest band (at its leaving threshold,
        as a band is kept). Concerns older than the kept evidence weigh next to nothing."""
        lowest = min((value for _, value in self._enter), default=None)
        # What the retention may have dropped by the time of a later step is left out of
        # every sample alike (a week spare for late events), so that samples agree however
        # the clock stood when the evidence was trimmed.
        score = self._score(step, at, max(at - self._retention, step.t - self._retention + _WEEK_US))
        return score if lowest is not None and score >= lowest * self._rule.exit_ratio else None

    def evaluate(self, step: Step) -> None:
        rule, t = self._rule, step.t
        start = t - self._retention
        score = self._score(step, t, start)
        band = Level.none  # the highest band entered, capped at the maximum
        for level, value in self._enter:
            if score >= value and level > band:
                band = level
        band = min(band, self._max)
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
