"""Triangulation: concerns from several independent kinds of source in one window, each
kind counting once it has enough concerns for the service's size."""

from bisect import bisect_right

from schemas.risk import Level
from services.scoring.policy import Triangulation
from services.scoring.rules.base import Hit, Step, next_edge
from services.scoring.timeline import days_us


def kind_index(rule: Triangulation | None) -> tuple[list[str], dict[str, int]]:
    """The kinds of source in name order, and each event type's kind."""
    if rule is None:
        return [], {}
    kinds = sorted(set(rule.source_kinds.values()))
    return kinds, {event_type: kinds.index(kind) for event_type, kind in rule.source_kinds.items()}


class Triangulated:
    def __init__(self, rule: Triangulation) -> None:
        self._rule = rule
        self._window = days_us(rule.window_days)
        self._kinds, _ = kind_index(rule)
        self._steps = [(s.min_kinds, Level[s.level]) for s in rule.steps]
        self._needed: dict[int | None, int] = {}

    def due(self, step: Step) -> int | None:
        edges = (next_edge(times, step.t, self._window) for times in step.timeline.by_kind)
        return min((e for e in edges if e is not None), default=None)

    def evaluate(self, step: Step) -> None:
        rule, t, timeline = self._rule, step.t, step.timeline
        start = t - self._window
        capacity = step.capacity
        needed = self._needed.get(capacity)
        if needed is None:
            needed = self._needed[capacity] = rule.per_kind(capacity)
        kinds = [
            name
            for name, times in zip(self._kinds, timeline.by_kind, strict=True)
            if len(times) >= needed and bisect_right(times, t) - bisect_right(times, start) >= needed
        ]
        level = Level.none
        for min_kinds, step_level in self._steps:
            if len(kinds) >= min_kinds or (
                step_level <= step.previous.triangulation_level and len(kinds) >= min_kinds - 1
            ):
                level = max(level, step_level)
        step.triangulation_level = level
        if level > Level.none:
            step.fire(level)
            if step.explain:
                description = f"{rule.description}: {len(kinds)} kinds ({', '.join(kinds)})" + (
                    f", each with at least {needed} concerns for its size" if needed > 1 else ""
                )
                step.hits.append(Hit(rule.id, "triangulation", level, description, len(kinds), "concerns", 0, start, t))
