"""From pooled tallies to what the report says: figures per variant, level and kind, the
baselines' frontiers and their matches at the policy's precision, bootstrap intervals,
the worst variant and the targets.

Pure.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from schemas.risk import Level
from services.evaluation import bootstrap, count_family, own_history
from services.evaluation.frontier import Match, Point, matched, pareto
from services.evaluation.measures import Figures, Tally, figures, kind_figures
from services.evaluation.sweep import LEVELS, Scored

DETECTORS = ("count", "own")
DETECTOR_NAMES = {"count": "count rule", "own": "own history"}


@dataclass(frozen=True)
class LevelResult:
    level: Level
    policy: Figures
    kinds: Mapping[str, Figures]
    points: Mapping[str, list[Point]]  # per detector, every setting
    frontier: Mapping[str, list[Point]]
    matched: Mapping[str, Match | None]
    intervals: bootstrap.Intervals


@dataclass(frozen=True)
class VariantResult:
    name: str
    scenarios: int
    scored: Scored
    levels: Mapping[Level, LevelResult]

    @property
    def severe(self) -> float | None:
        found, of = self.scored.severe
        return found / of if of else None

    @property
    def stuck(self) -> float | None:
        found, of = self.scored.stuck
        return found / of if of else None


def point(detector: str, family: str, label: str, t: Tally, level: Level) -> Point:
    f = figures(t, level)
    kinds = kind_figures(t, level)
    return Point(
        detector,
        family,
        label,
        f.precision or 0.0,
        f.recall270 or 0.0,
        f.recall90 or 0.0,
        f.median_days,
        {k: v.recall270 for k, v in kinds.items() if v.planted},
        {k: v.median_days for k, v in kinds.items() if v.planted},
    )


def _points(scored: Scored, level: Level) -> dict[str, list[Point]]:
    count = [
        point("count", rule.family, rule.label, t, level)
        for rule, t in zip(count_family.grid(), scored.count, strict=True)
    ]
    own = [
        point("own", f"{rule.mode} x{rule.ratio:g}", rule.label, t, level)
        for rule, t in zip(own_history.grid(), scored.own, strict=True)
    ]
    return {"count": count, "own": own}


def level_result(scored: Scored, level: Level, resamples: int = bootstrap.RESAMPLES) -> LevelResult:
    policy = figures(scored.policy[level], level)
    points = _points(scored, level)
    frontier = {d: pareto(points[d]) for d in DETECTORS}
    found = {d: matched(frontier[d], policy.precision) if policy.precision is not None else None for d in DETECTORS}
    names, strata = bootstrap.clusters(scored.worlds)
    tallies = [scored.policy[level], *scored.count, *scored.own]
    columns = bootstrap.columns(names, tallies, level)
    n_count = len(scored.count)
    groups = [range(1, 1 + n_count), range(1 + n_count, len(tallies))]
    weights = bootstrap.weights(strata, resamples)
    return LevelResult(
        level,
        policy,
        kind_figures(scored.policy[level], level),
        points,
        frontier,
        found,
        bootstrap.intervals(columns, groups, weights),
    )


def variant_result(name: str, scenarios: int, scored: Scored, resamples: int = bootstrap.RESAMPLES) -> VariantResult:
    return VariantResult(name, scenarios, scored, {lv: level_result(scored, lv, resamples) for lv in LEVELS})


# --- targets and the worst variant ------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    name: str
    get: Callable[[VariantResult, Level], float | None]
    higher_is_better: bool
    targets: Mapping[Level, float]  # the bound at each level it has one for
    percent: bool = True
    digits: int = 1  # shown with this many decimals (of a percentage, or of the number)


def _fig(attr: str) -> Callable[[VariantResult, Level], float | None]:
    def get(v: VariantResult, level: Level) -> float | None:
        value: float | None = getattr(v.levels[level].policy, attr)
        return value

    return get


MEASURES: tuple[Measure, ...] = (
    Measure("recall within 270 days", _fig("recall270"), True, {Level.minor: 0.90, Level.moderate: 0.75}),
    Measure("recall within 90 days", _fig("recall90"), True, {}),
    Measure("precision", _fig("precision"), True, {Level.minor: 0.35, Level.moderate: 0.80}),
    Measure("median days to detect", _fig("median_days"), False, {Level.minor: 80, Level.moderate: 150}, False),
    Measure(
        "ordinary locations' share of location-days at the level",
        _fig("ordinary_share"),
        False,
        {Level.minor: 0.04, Level.moderate: 0.015},
    ),
    Measure(
        "alerts to ordinary locations per 100 a month",
        _fig("false_per_100_month"),
        False,
        {Level.moderate: 0.5},
        False,
        2,
    ),
    Measure(
        "changes per ordinary location per 90 days", _fig("flapping_per_90"), False, {Level.moderate: 2.0}, False, 2
    ),
)


def worst(
    variants: Sequence[VariantResult], get: Callable[[VariantResult], float | None], higher_is_better: bool
) -> tuple[float | None, str]:
    """The worst value over the variants and the variant that has it."""
    values = [(value, v.name) for v in variants if (value := get(v)) is not None]
    if not values:
        return None, ""
    pick = min(values) if higher_is_better else max(values)
    return pick


def meets(value: float | None, bound: float, higher_is_better: bool) -> bool:
    return value is not None and (value >= bound if higher_is_better else value <= bound)


@dataclass(frozen=True)
class Versus:
    """The policy against one baseline at its precision, at one level."""

    recall_gain: float | None  # policy's recall within 270 days minus the baseline's
    days_ratio: float | None  # policy's median days / the baseline's


def versus(result: LevelResult, detector: str) -> Versus:
    m = result.matched.get(detector)
    p = result.policy
    if m is None or p.recall270 is None:
        return Versus(None, None)
    ratio = p.median_days / m.median_days if p.median_days is not None and m.median_days else None
    return Versus(p.recall270 - m.recall, ratio)
