"""A `Course`: how one location's signal rates move over time. Pure.

A stress curve between 0 (ordinary) and 1 (the trajectory at its worst) and, per stream,
the rate multiplier at full stress. Stress rises from `start` over `ramp` days with a
power (above 1: slow at first, then faster; below 1: fast, then levelling), may hold,
and may ease from `improve` to `recovered`, down to a `residual` share of itself (0: back
to base, a recovery or a burst that passed; between: a partial recovery).
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Course:
    start: float
    ramp: float  # days from start to full stress
    peaks: dict[str, float]
    power: float = 1.5
    improve: float | None = None  # stress eases from here...
    recovered: float | None = None  # ...to `residual` of its level here
    residual: float = 0.0
    stops: float | None = None  # the service closes: no events after this
    degrades_care: bool = True  # stress shows in payloads (severity, findings, staffing)
    staffing: float = 1.0  # how far stress shows in workforce returns (vacancies, agency staff)
    care: float = 1.0  # how far stress shows in what events say (a mild world's failures less)
    focus: str = ""  # what events' contents emphasise: "", staffing, closed, medication

    def _rise(self, t: float) -> float:
        return math.pow(min(1.0, (t - self.start) / self.ramp), self.power)

    def stress(self, t: float) -> float:
        if t <= self.start:
            return 0.0
        if self.improve is not None and self.recovered is not None and t > self.improve:
            at_improve = self._rise(self.improve) if self.improve > self.start else 0.0
            span = self.recovered - self.improve
            eased = 1.0 if span <= 0 else min(1.0, (t - self.improve) / span)
            return max(0.0, at_improve * (1.0 - (1.0 - self.residual) * eased))
        return self._rise(t)

    def care_stress(self, t: float) -> float:
        """The stress that shows in what events say (0 where care does not degrade)."""
        return self.stress(t) * self.care if self.degrades_care else 0.0

    def time_at(self, stress: float) -> float:
        """When the stress first reaches this level (inf if never)."""
        if stress > 1:
            return math.inf
        end = self.start + self.ramp * math.pow(stress, 1 / self.power)
        if self.improve is not None and end > self.improve:
            return math.inf
        return end

    def care_time_at(self, level: float) -> float:
        """When the care stress first reaches this level (inf if never)."""
        if not self.degrades_care or self.care <= 0:
            return math.inf
        return self.time_at(level / self.care)

    def multiplier(self, stream: str, t: float) -> float:
        if self.stops is not None and t >= self.stops:
            return 0.0
        peak = self.peaks.get(stream)
        return 1.0 if peak is None else 1.0 + (peak - 1.0) * self.stress(t)

    def max_multiplier(self, stream: str) -> float:
        return max(1.0, self.peaks.get(stream, 1.0))
