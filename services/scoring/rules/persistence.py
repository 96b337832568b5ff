"""Persistence: a lower-level rule (a pattern, a rise, a peer rule, the accumulation) that
has held for `persist_days` and is not fading escalates ("repeated missed visits for 94
days and rising"). The source reserves the provider concerns process for patterns that
show the provider "has not made any changes to reduce the number of incidents".

A pure function of the kept evidence at time t: the rule's condition, at its looser
(leaving) threshold, is checked at sample points fixed in time (multiples of
`sample_days` since the epoch) inside the period, and the rule must hold at t itself.
The answer can change only with an event, the rule's own window edges, a new sample
point or the oldest one leaving the period: `due` names the next of those while the rule
holds and has not yet persisted long enough. Once escalated, it stays while the rule holds (hysteresis) and
falls with it when the pattern fades.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from schemas.risk import Level
from services.scoring.policy_families import Persistence
from services.scoring.rules.base import Hit, Selector, Step
from services.scoring.timeline import US_PER_DAY, days_us

# At a sample time: the rule's measure (a count, a score) if its condition held then.
Held = Callable[[Step, str, int], float | None]


@dataclass(frozen=True)
class Judged:
    """How to read the rule a persistence rule judges: at a sample time (`held`), whether
    it holds now (its band for the accumulation, else the active set), and which events
    are its evidence (a selector and its bit or mask)."""

    held: Held
    selector: Selector
    bit: int = 0
    by_band: bool = False


class Persisting:
    def __init__(self, rules: list[Persistence], judged: Mapping[str, Judged]) -> None:
        """`judged`: per rule id a persistence rule can judge, how to read it."""
        self._rules = [
            (r, judged[r.of], days_us(r.persist_days), days_us(r.sample_days), Level[r.level]) for r in rules
        ]

    @staticmethod
    def _samples(t: int, period: int, every: int) -> list[int]:
        """Sample points in [t - period, t), newest first: fixed multiples of `every`."""
        first = t - t % every
        if first == t:
            first -= every
        return list(range(first, t - period - 1, -every))

    def due(self, step: Step) -> int | None:
        """While the rule holds and has not yet persisted: the next sample point, or the
        oldest sample leaving the period, whichever comes first."""
        edges = []
        t = step.t
        for rule, judged, period, every, _ in self._rules:
            was = step.previous.accumulation_band > Level.none if judged.by_band else rule.of in step.previous.active
            if was and rule.id not in step.previous.active:
                samples = self._samples(t, period, every)
                edges.append(t - t % every + every)
                if samples:
                    edges.append(samples[-1] + period + 1)
        return min(edges, default=None)

    def evaluate(self, step: Step) -> None:
        t = step.t
        for rule, judged, period, every, level in self._rules:
            held = judged.held
            if not (step.accumulation_band > Level.none if judged.by_band else rule.of in step.active):
                continue
            now = held(step, rule.of, t)
            if now is None:
                continue
            if rule.id not in step.previous.active and not self._persisted(step, rule, held, now, period, every):
                continue
            step.active.add(rule.id)
            step.fire(level)
            if step.explain:
                step.hits.append(self._hit(step, rule, judged, level, now, period, every))

    def _persisted(self, step: Step, rule: Persistence, held: Held, now: float, period: int, every: int) -> bool:
        """Held at every sample of the period, and (not_falling) no lower now than at its
        start. The oldest sample first: a rule that began to hold lately fails there at
        once, without the samples between."""
        samples = self._samples(step.t, period, every)
        if not samples:
            return False
        oldest = held(step, rule.of, samples[-1])
        if oldest is None or (rule.trend == "not_falling" and now < oldest):
            return False
        return all(held(step, rule.of, s) is not None for s in samples[:-1])

    def _hit(
        self, step: Step, rule: Persistence, judged: Judged, level: Level, now: float, period: int, every: int
    ) -> Hit:
        """What persisted and how it moved over the period: "for over 90 days and rising
        (9 then, 12 now)". Explained at every assessment while it fires, so it reads one
        sample (the period's oldest), not every one."""
        t = step.t
        samples = self._samples(t, period, every)
        start = samples[-1] if samples else t - period
        first = judged.held(step, rule.of, start) if samples else None
        description = f"{rule.description}: for over {rule.persist_days:g} days"
        if first is not None:
            trend = "rising" if now > first else "falling" if now < first else "steady"
            description += f" and {trend} ({_fmt(first)} then, {_fmt(now)} now)"
        days = (t - start) / US_PER_DAY
        return Hit(rule.id, "persistence", level, description, days, judged.selector, judged.bit, start - 1, t)


def _fmt(x: float) -> str:
    return f"{x:.0f}" if x == int(x) else f"{x:.1f}"
