"""One simulation run, end to end: population, plan, events to a sink, ground truth."""

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.simulator.config import SimulationConfig
from services.simulator.generator import EventStream, all_sources
from services.simulator.population import Population, build_population
from services.simulator.sinks import EventSink, Progress, write_directory
from services.simulator.spread import authority_cultures, location_factors
from services.simulator.trajectories import Plan, plan_world
from services.simulator.truth import build_truth
from services.simulator.variants import Variant, variant_named


@dataclass
class RunResult:
    events: int
    duplicates: int
    seconds: float
    truth: dict[str, Any]
    population: Population


def build_world(config: SimulationConfig, variant: str | Variant | None = None) -> tuple[Population, Plan]:
    """The same seed and variant always give the same population and the same plan.

    `variant` (a name in VARIANTS or a Variant) overrides `config.variant`. The population
    depends on the seed alone, and each location's and authority's spread draws do too
    (scaled by the variant), so that variants of one seed differ only as they are named.
    """
    chosen = variant_named(config.variant if variant is None else variant)
    rng = random.Random(config.seed)
    population = build_population(rng, config.location_count, config.authority_count)
    plan = plan_world(rng, population, config.days, chosen)
    plan.factors = location_factors(
        random.Random(f"{config.seed}:spread"), (s.location_id for s in population.sites), chosen
    )
    plan.cultures = authority_cultures(
        random.Random(f"{config.seed}:culture"), (a.ons_code for a in population.authorities), chosen
    )
    return population, plan


def simulate(
    config: SimulationConfig,
    sink: EventSink,
    truth_path: Path | None = None,
    directory_dir: Path | None = None,
    publish_directory: bool = False,
    progress: Progress | None = None,
    variant: str | Variant | None = None,
) -> RunResult:
    """`variant` overrides `config.variant` (see build_world)."""
    started = time.monotonic()
    population, plan = build_world(config, variant)
    if directory_dir is not None:
        write_directory(population, directory_dir, all_sources(population))
    if publish_directory:
        sink.directory(population)
    stream = EventStream(config, population, plan)

    def on_progress(fraction: float) -> None:
        if progress is not None:
            progress.events = stream.emitted
            progress(fraction)

    try:
        for event in stream.run(on_progress if progress is not None else None):
            sink.send(event)
    finally:
        sink.close()
    truth = build_truth(config, population, plan, stream.labelled)
    if truth_path is not None:
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    return RunResult(stream.emitted, stream.duplicates, time.monotonic() - started, truth, population)
