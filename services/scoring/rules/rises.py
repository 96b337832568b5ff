"""Rises: a recent window against the location's own longer history (one-sided Poisson)."""

import math
from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Rise
from services.scoring.rules.base import CONTINUOUS_US, Hit, Step, next_edge
from services.scoring.timeline import days_us


def poisson_upper_tail(observed: int, expected: float) -> float:
    """P(X >= observed) for X ~ Poisson(expected)."""
    if observed <= 0:
        return 1.0
    if expected > 700:
        # exp(-expected) underflows (to zero beyond ~745): sum the terms in logs instead.
        log_expected = math.log(expected)
        below = math.fsum(math.exp(k * log_expected - expected - math.lgamma(k + 1)) for k in range(observed))
        return min(1.0, max(0.0, 1.0 - below))
    term = math.exp(-expected)
    below = term
    for k in range(1, observed):
        term *= expected / k
        below += term
    return max(0.0, 1.0 - below)


class Rises:
    def __init__(self, rises: list[Rise], bits: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.recent_days), Level[r.level]) for r in rises]

    def due(self, step: Step) -> int | None:
        t, by_rule = step.t, step.timeline.by_rule
        edges: list[int | None] = []
        for rule, bit, recent_span, _ in self._rules:
            times = by_rule[bit]
            if not times:
                continue
            baseline_days = min(rule.baseline_days, step.observed_days - rule.recent_days)
            if baseline_days < rule.baseline_days:
                # The baseline grows with the location's history: the test moves every day.
                edges.append(t + CONTINUOUS_US)
            edges.append(next_edge(times, t, recent_span))
            if baseline_days > 0:
                edges.append(next_edge(times, t - recent_span, days_us(baseline_days)))
        return min((e for e in edges if e is not None), default=None)

    def evaluate(self, step: Step) -> None:
        t, timeline = step.t, step.timeline
        for rule, bit, recent_span, level in self._rules:
            if not timeline.by_rule[bit] or step.observed_days < rule.min_history_days:
                continue
            baseline_days = min(rule.baseline_days, step.observed_days - rule.recent_days)
            if baseline_days <= 0:
                continue
            recent_start = t - recent_span
            recent = timeline.tagged(bit, recent_start, t)
            was = rule.id in step.previous.active
            # No recent event is never a rise (p = 1), and below the minimum only an
            # active rise can stay: skip the test.
            if recent == 0 or (recent < rule.min_recent_count and not was):
                continue
            baseline = timeline.tagged(bit, recent_start - days_us(baseline_days), recent_start)
            # Half an event of pseudo-count: a quiet history is not proof of a zero rate.
            expected = (baseline + 0.5) * rule.recent_days / baseline_days
            p = poisson_upper_tail(recent, expected)
            if (recent >= rule.min_recent_count and p < rule.enter_p) or (was and p < rule.exit_p):
                step.active.add(rule.id)
                step.fire(level)
                if step.explain:
                    description = (
                        f"{rule.description} ({recent} in {rule.recent_days:g} days against "
                        f"{expected:.1f} expected; p={p:.4f})"
                    )
                    step.hits.append(Hit(rule.id, "rise", level, description, p, "tag", bit, recent_start, t))
