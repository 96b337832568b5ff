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
from services.simulator.trajectories import Plan, plan_world
from services.simulator.truth import build_truth


@dataclass
class RunResult:
    events: int
    duplicates: int
    seconds: float
    truth: dict[str, Any]
    population: Population


def build_world(config: SimulationConfig) -> tuple[Population, Plan]:
    """The same seed always gives the same population and the same plan."""
    rng = random.Random(config.seed)
    population = build_population(rng, config.location_count, config.authority_count)
    return population, plan_world(rng, population, config.days)


def simulate(
    config: SimulationConfig,
    sink: EventSink,
    truth_path: Path | None = None,
    directory_dir: Path | None = None,
    publish_directory: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    started = time.monotonic()
    population, plan = build_world(config)
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
