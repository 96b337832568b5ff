"""CQC ratings: the latest rating Inadequate, or Requires improvement several times in a
row. A rating stands until the next, so ratings are looked back on for longer."""

from schemas.risk import Level
from services.scoring.policy import Ratings
from services.scoring.rules.base import Hit, Step
from services.scoring.timeline import Item, days_us


def _published(item: Item) -> tuple[str, int]:
    return (str(item.facts.get("published", "")), item.time)


class Rated:
    def __init__(self, rule: Ratings, lookback_us: int) -> None:
        self._rule = rule
        self._lookback = lookback_us
        self._hold = days_us(rule.repeat_ri_hold_days) if rule.repeat_ri_hold_days is not None else None

    def due(self, step: Step) -> int | None:
        start = step.t - self._lookback
        inside = [r.time for r in step.timeline.ratings if start < r.time <= step.t]
        edges = [min(inside) + self._lookback] if inside else []
        if self._hold is not None:
            # The repeated rating's hold ends this long after the latest rating.
            edges += [r + self._hold for r in inside if r + self._hold > step.t]
        return min(edges, default=None)

    def evaluate(self, step: Step) -> None:
        rule, t = self._rule, step.t
        start = t - self._lookback
        rated = sorted((r for r in step.timeline.ratings if start < r.time <= t), key=_published)
        if not rated:
            return
        latest = rated[-1]
        if latest.facts.get("overall") == "inadequate":
            self._fire(step, rule.inadequate_id, rule.inadequate_level, "Rated Inadequate by CQC", [latest])
        last = rated[-rule.repeat_ri_count :]
        held = self._hold is None or latest.time > t - self._hold
        if (
            held
            and len(last) == rule.repeat_ri_count
            and all(r.facts.get("overall") == "requires_improvement" for r in last)
        ):
            description = f"Rated Requires improvement {rule.repeat_ri_count} times in a row"
            self._fire(step, rule.repeat_ri_id, rule.repeat_ri_level, description, last)

    @staticmethod
    def _fire(step: Step, rule_id: str, level_name: str, description: str, items: list[Item]) -> None:
        level = Level[level_name]
        step.fire(level)
        if step.explain:
            named = tuple((r.source, r.id) for r in items)
            step.hits.append(Hit(rule_id, "rating", level, description, None, "named", named=named))
