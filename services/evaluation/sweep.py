"""Every detector on every scenario: the policy at Minor+ and Moderate+, each count rule
and each own-history setting, scored against the truth; then pooled per variant.

Pure apart from the optional process pool. A scenario's tallies keep their clusters, so
pooled tallies still serve the bootstrap.
"""

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from schemas.risk import Level
from services.evaluation import count_family, own_history
from services.evaluation.alarms import at_or_above, on_during, steps, time_at
from services.evaluation.measures import Tally, World, pooled, tally
from services.evaluation.scenarios import ScenarioRun

LEVELS = (Level.minor, Level.moderate)
STUCK_DAYS = 90.0  # "at Minor for over 90 days"
SEVERE_WITHIN_DAYS = 1.0


@dataclass
class Scored:
    """One scenario (or a variant's scenarios pooled): every detector's tallies."""

    worlds: list[World]
    policy: dict[Level, Tally]
    count: list[Tally]  # per count_family.grid() rule
    own: list[Tally]  # per own_history.grid() setting
    severe: tuple[int, int] = (0, 0)  # genuine severe events at Major within a day, of all
    stuck: tuple[int, int] = (0, 0)  # planted at Minor > 90 days never at Moderate+, of all
    stuck_ids: list[str] = field(default_factory=list)


def severe_at_major(
    world: World, major: dict[str, list[tuple[float, float]]], arrivals: dict[str, float]
) -> tuple[int, int]:
    """Genuine severe events whose location is at Major within a day of the event reaching
    the system (the stream's time when it arrived: producers report days late)."""
    found = 0
    for loc, at, event_id in world.genuine:
        arrived = max(at, arrivals.get(event_id, at))
        found += on_during(major.get(loc, []), arrived, arrived + SEVERE_WITHIN_DAYS)
    return found, len(world.genuine)


def stuck_at_minor(world: World, levels: dict[str, list[tuple[float, Level]]]) -> list[str]:
    out = []
    for p in world.planted:
        if p.expected < Level.moderate:
            continue
        moderate = at_or_above({loc: levels.get(loc, []) for loc in p.locations}, Level.moderate, world.days)
        if any(on_during(moderate.get(loc, []), p.start, p.active_end) for loc in p.locations):
            continue
        if max(time_at(levels.get(loc, []), Level.minor, p.start, p.active_end) for loc in p.locations) > STUCK_DAYS:
            out.append(f"{world.scenario} {p.id}")
    return out


def score(run: ScenarioRun, warmup_days: float, settings: own_history.Settings = own_history.DEFAULT) -> Scored:
    world = World.from_truth(run.scenario.label, run.truth)
    levels = steps(run.policy, run.start)
    policy = {lv: tally(world, at_or_above(levels, lv, world.days), warmup_days) for lv in LEVELS}
    obs = run.observations
    times = obs.concern_times()
    count = [
        tally(world, count_family.rule_alarms(rule, times, obs.capacity, obs.locations, world.days), warmup_days)
        for rule in count_family.grid()
    ]
    paths = own_history.paths(obs, settings)
    own = [tally(world, own_history.rule_alarms(paths, rule), warmup_days) for rule in own_history.grid(settings)]
    stuck = stuck_at_minor(world, levels)
    planted = sum(p.expected >= Level.moderate for p in world.planted)
    return Scored(
        [world],
        policy,
        count,
        own,
        severe_at_major(world, at_or_above(levels, Level.major, world.days), obs.arrivals),
        (len(stuck), planted),
        stuck,
    )


def pool(parts: Sequence[Scored]) -> Scored:
    return Scored(
        worlds=[w for p in parts for w in p.worlds],
        policy={lv: pooled(p.policy[lv] for p in parts) for lv in LEVELS},
        count=[pooled(p.count[i] for p in parts) for i in range(len(parts[0].count))],
        own=[pooled(p.own[i] for p in parts) for i in range(len(parts[0].own))],
        severe=(sum(p.severe[0] for p in parts), sum(p.severe[1] for p in parts)),
        stuck=(sum(p.stuck[0] for p in parts), sum(p.stuck[1] for p in parts)),
        stuck_ids=[s for p in parts for s in p.stuck_ids],
    )


def score_all(
    runs: Sequence[ScenarioRun], warmup_days: float, workers: int = 1, on_done: Callable[[int], None] | None = None
) -> list[Scored]:
    """Each run scored, in the order given (processes side by side with `workers` > 1)."""
    if workers <= 1 or len(runs) <= 1:
        out = []
        for i, run in enumerate(runs):
            out.append(score(run, warmup_days))
            if on_done is not None:
                on_done(i)
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool_:
        futures = [pool_.submit(score, run, warmup_days) for run in runs]
        results = []
        for i, future in enumerate(futures):
            results.append(future.result())
            if on_done is not None:
                on_done(i)
        return results
