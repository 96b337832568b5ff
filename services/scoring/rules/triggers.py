"""Triggers: one event of a kind sets a level by itself and holds it for `hold_days`.

A trigger with `corroborate` sets its level only once another piece of information, from
another kind of source, has come within `within_days` of the flag (before or after it);
the hold then runs from whichever of the two came later."""

from bisect import bisect_left, bisect_right
from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Trigger
from services.scoring.rules.base import Hit, Step, next_edge
from services.scoring.timeline import Item, Timeline, days_us


def corroboration_tag(trigger_id: str) -> str:
    """The tag of the events that corroborate a trigger (not a rule id: ids have no colon)."""
    return f"{trigger_id}:corroborate"


class Triggers:
    def __init__(self, triggers: list[Trigger], bits: Mapping[str, int], kind_of_type: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.hold_days), Level[r.level]) for r in triggers]
        self._corroborated = {
            r.id: (bits[corroboration_tag(r.id)], days_us(r.corroborate.within_days))
            for r in triggers
            if r.corroborate is not None
        }
        self._kind_of_type = kind_of_type

    def _since(self, timeline: Timeline, rule: Trigger, bit: int, hold: int, t: int) -> tuple[int, int] | None:
        """(flag time, time corroborated) of the corroborated flag whose hold lasts longest
        at t, or None. Flags older than the hold and the corroboration's reach are past."""
        by_bit, within = self._corroborated[rule.id]
        flags = timeline.by_rule[bit]
        others = timeline.by_rule[by_bit]
        best: tuple[int, int] | None = None
        for at in range(bisect_right(flags, t - hold - within), bisect_right(flags, t)):
            flag = flags[at]
            # The earliest corroborating event from `within` before the flag, up to t.
            lo, hi = bisect_left(others, flag - within), bisect_right(others, min(flag + within, t))
            if lo >= hi:
                continue
            kinds = self._flag_kinds(timeline, bit, flag)
            found = next((x for x in self._other_kinds(timeline, by_bit, lo, hi, kinds)), None)
            if found is None:
                continue
            since = max(flag, found)
            if since > t - hold and (best is None or since > best[1]):
                best = (flag, since)
        return best

    def _flag_kinds(self, timeline: Timeline, bit: int, at: int) -> set[int | None]:
        return {self._kind_of_type.get(i.type) for i in timeline.between(at - 1, at) if i.tags >> bit & 1}

    def _other_kinds(self, timeline: Timeline, by_bit: int, lo: int, hi: int, kinds: set[int | None]) -> list[int]:
        """Times of corroborating events (the lo..hi-th of their tag) from another kind of
        source than the flag's, in time order."""
        times = timeline.by_rule[by_bit]
        out = []
        for time in sorted(set(times[lo:hi])):
            for item in timeline.between(time - 1, time):
                if item.tags >> by_bit & 1 and self._kind_of_type.get(item.type) not in kinds:
                    out.append(time)
                    break
            if out:
                break
        return out

    def due(self, step: Step) -> int | None:
        by_rule, t = step.timeline.by_rule, step.t
        edges: list[int | None] = []
        for rule, bit, hold, _ in self._rules:
            if rule.id in self._corroborated:
                found = self._since(step.timeline, rule, bit, hold, t)
                edges.append(found[1] + hold if found is not None else None)
            else:
                edges.append(next_edge(by_rule[bit], t, hold))
        return min((e for e in edges if e is not None and e > t), default=None)

    def evaluate(self, step: Step) -> None:
        t, by_rule = step.t, step.timeline.by_rule
        for rule, bit, hold, level in self._rules:
            times = by_rule[bit]
            # Any event of the kind in (t - hold, t]: the newest at or before t is inside.
            at = bisect_right(times, t)
            if rule.id in self._corroborated:
                if not at or times[at - 1] <= t - hold - self._corroborated[rule.id][1]:
                    continue
                found = self._since(step.timeline, rule, bit, hold, t)
                if found is None:
                    continue
                step.fire(level)
                if step.explain:
                    step.hits.append(self._corroborated_hit(step, rule, bit, level, found))
                continue
            if not at or times[at - 1] <= t - hold:
                continue
            step.fire(level)
            if step.explain:
                count = at - bisect_right(times, t - hold)
                step.hits.append(Hit(rule.id, "trigger", level, rule.description, count, "tag", bit, t - hold, t))

    def _corroborated_hit(self, step: Step, rule: Trigger, bit: int, level: Level, found: tuple[int, int]) -> Hit:
        flag, since = found
        by_bit, within = self._corroborated[rule.id]
        timeline = step.timeline
        flags = [i for i in timeline.between(flag - 1, flag) if i.tags >> bit & 1]
        kinds = {self._kind_of_type.get(i.type) for i in flags}
        support = [
            i
            for i in timeline.between(flag - within - 1, min(flag + within, step.t))
            if i.tags >> by_bit & 1 and self._kind_of_type.get(i.type) not in kinds
        ]
        days = abs(since - flag) / 86_400_000_000 if since != flag else 0.0
        first = min(support, key=lambda i: i.time) if support else None
        description = rule.description
        if first is not None:
            when = "after" if first.time > flag else "before"
            gap = abs(first.time - flag) / 86_400_000_000
            description += (
                f" ({flags[0].type} corroborated by {len(support)} from another kind of source within "
                f"{rule.corroborate.within_days if rule.corroborate else 0:g} days: the first a {first.type} "
                f"{gap:.0f} days {when})"
            )
        named = tuple((i.source, i.id) for i in _unique([*flags, *support]))
        return Hit(rule.id, "trigger", level, description, days, "named", named=named)


def _unique(items: list[Item]) -> list[Item]:
    seen: set[tuple[str, str]] = set()
    out = []
    for i in sorted(items, key=lambda i: (i.time, i.source, i.id)):
        if (i.source, i.id) not in seen:
            seen.add((i.source, i.id))
            out.append(i)
    return out
