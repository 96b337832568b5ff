"""Scenarios: a simulated world, its events through the policy's replay and the baseline.

The shell of the evaluation: it runs the simulator in process (no files), feeds the
replay and the baseline, and can spread the work over processes. Two ways:
- several scenarios: one process each, exact;
- one large scenario over `workers` processes by partition: each process generates the
  same (deterministic) stream and replays only its partitions' locations. A location's
  model is per location, so every location's level changes are the worker's, except that
  its peer rules see only the locations of its process's partitions (half of the country
  with two workers: thousands of peers of each type, not all of them). The organisation
  roll-up then runs over the merged location changes in time order.

Alongside the replay, each run keeps what the baselines need (`signals.Observations`):
every distinct event as location, time, signal and whether it is a concern.

World variants (`services.simulator.variants`) are part of
a scenario: the same seed under another variant is another world.
"""

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.directory import Location
from services.evaluation.changes import Change
from services.evaluation.replay import Replay, organisation_changes, roll_up_input
from services.evaluation.signals import Observations, Observer
from services.scoring.policy import Policy
from services.scoring.routing import PARTITIONS, partition_of
from services.simulator.config import Scale, SimulationConfig
from services.simulator.generator import EventStream
from services.simulator.population import Population
from services.simulator.run import build_world
from services.simulator.trajectories import Plan
from services.simulator.truth import build_truth
from services.simulator.variants import VARIANTS

STANDARD = "standard"


def variant_names() -> list[str]:
    """The simulator's world variants, the standard world first."""
    return list(VARIANTS)


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    locations: int | None
    days: int
    scale: Scale = "region"
    variant: str = STANDARD

    def config(self) -> SimulationConfig:
        """The simulator's configuration (an unknown variant: UnknownVariant, a ValueError)."""
        return SimulationConfig(
            seed=self.seed, scale=self.scale, locations=self.locations, days=self.days, variant=self.variant
        )

    @property
    def label(self) -> str:
        return f"{self.name} {self.seed}" if self.variant == STANDARD else f"{self.variant} {self.seed}"


def world(scenario: Scenario) -> tuple[SimulationConfig, Population, Plan, EventStream]:
    """The scenario's world and its event stream (the one place that builds them)."""
    config = scenario.config()
    population, plan = build_world(config)
    return config, population, plan, EventStream(config, population, plan)


@dataclass
class ScenarioRun:
    scenario: Scenario
    truth: dict[str, Any]
    locations: dict[str, Location]
    policy: list[Change]
    observations: Observations
    events: int = 0
    # CPU seconds in the replay (summed over processes), and wall seconds of the scenario.
    replay_cpu_s: float = 0.0
    wall_s: float = 0.0
    workers: int = 1
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.truth["start"])

    @property
    def end(self) -> datetime:
        return datetime.fromisoformat(self.truth["end"])


@dataclass
class _Part:
    changes: list[Change]
    observations: Observations
    events: int
    cpu_s: float
    statuses: dict[str, int]
    truth: dict[str, Any] | None


def _run_part(
    scenario: Scenario,
    policy: Policy,
    own: frozenset[int] | None,
    want_truth: bool,
    progress: Callable[[float], None] | None = None,
) -> _Part:
    config, population, plan, stream = world(scenario)
    locations = {s.location_id: s.location for s in population.sites}
    engine = Replay(locations, policy, own_partitions=own)
    observer = observer_for(config, population)
    cpu = 0.0
    events = 0
    for event in stream.run(progress):
        started = time.process_time()
        engine.event(event)
        cpu += time.process_time() - started
        mine = own is None or partition_of(event["subject"], PARTITIONS) in own
        events += mine
        observer.event(event, mine)
    started = time.process_time()
    engine.run_clock_until(datetime.fromisoformat(config_end(config)))
    cpu += time.process_time() - started
    truth = build_truth(config, population, plan, stream.labelled) if want_truth else None
    return _Part(
        changes=engine.result.changes,
        observations=observer.out,
        events=events,
        cpu_s=cpu,
        statuses=dict(engine.result.statuses),
        truth=truth,
    )


def observer_for(config: SimulationConfig, population: Population) -> Observer:
    rows = [(s.location_id, s.location.capacity, s.location.service_type.value) for s in population.sites]
    return Observer(rows, datetime.fromtimestamp(config.start_epoch, UTC), config.days)


def config_end(config: SimulationConfig) -> str:
    return datetime.fromtimestamp(config.start_epoch + config.days * 86_400.0, UTC).isoformat()


def run_scenario(
    scenario: Scenario,
    policy: Policy,
    workers: int = 1,
    progress: Callable[[float], None] | None = None,
) -> ScenarioRun:
    """One scenario; with `workers` > 1 its partitions are split over processes."""
    started = time.monotonic()
    config, population, _, _ = world(scenario)
    locations = {s.location_id: s.location for s in population.sites}
    providers = {s.location_id: s.location.provider_id for s in population.sites}
    if workers <= 1:
        parts = [_run_part(scenario, policy, None, True, progress)]
    else:
        groups = [frozenset(p for p in range(PARTITIONS) if p % workers == w) for w in range(workers)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_part, scenario, policy, g, i == 0) for i, g in enumerate(groups)]
            parts = [f.result() for f in futures]
    location_changes = [c for part in parts for c in part.changes]
    if workers > 1:
        location_changes.sort(key=lambda c: (c.time, c.subject, c.sequence))
    orgs = organisation_changes((roll_up_input(c, providers[c.subject]) for c in location_changes), policy)
    truth = next(p.truth for p in parts if p.truth is not None)
    statuses: dict[str, int] = {}
    observer = observer_for(config, population)
    for part in parts:
        observer.merge(part.observations)
        for status, count in part.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return ScenarioRun(
        scenario=scenario,
        truth=truth,
        locations=locations,
        policy=location_changes + orgs,
        observations=observer.out,
        events=sum(p.events for p in parts),
        replay_cpu_s=sum(p.cpu_s for p in parts),
        wall_s=time.monotonic() - started,
        workers=workers,
        statuses=statuses,
    )


def _run_whole(scenario: Scenario, policy: Policy) -> ScenarioRun:
    return run_scenario(scenario, policy)


def run_scenarios(
    scenarios: list[Scenario], policy: Policy, workers: int = 1, on_done: Callable[[ScenarioRun], None] | None = None
) -> list[ScenarioRun]:
    """Several scenarios, one process each (up to `workers` at once), in the order given."""
    if workers <= 1 or len(scenarios) == 1:
        runs = []
        for scenario in scenarios:
            run = run_scenario(scenario, policy)
            if on_done is not None:
                on_done(run)
            runs.append(run)
        return runs
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_whole, s, policy) for s in scenarios]
        results = []
        for future in futures:
            run = future.result()
            if on_done is not None:
                on_done(run)
            results.append(run)
        return results
