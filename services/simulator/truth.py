"""The ground truth: what was planted, from when, and the level the world says it deserves.

The expected levels are the world's judgement written from the domain brief's rows, not
read from any policy file: a slide in care quality (patterns of medication errors,
neglect, complaints, missed visits) is at least Moderate; a single severe event (a death
linked to a safeguarding concern, a concern about serious abuse or neglect, enforcement
related to quality of care, criminal proceedings about poor care) is Major from that
event; a location that stops sending notifications and concerns is at least Minor
("unusually low" concerns can mean under-reporting); one-off poor care is none.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from services.simulator.config import SimulationConfig
from services.simulator.course import Course
from services.simulator.generator import Labelled
from services.simulator.population import Population
from services.simulator.trajectories import Plan

# 2: the variant, new kinds (staffing_collapse, closed_culture, medication_failure,
# short_burst in place of manager_departure and homecare_collapse) and each planted
# location's shape.
TRUTH_VERSION = 2
# A course reaching full stress within this many days has a fast onset.
FAST_ONSET_DAYS = 90.0


def _iso(config: SimulationConfig, days: float | None) -> str | None:
    if days is None:
        return None
    start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
    return (start + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shape(config: SimulationConfig, course: Course) -> dict[str, Any]:
    """How one planted location's rates move: for reports per shape, not for scoring."""
    return {
        "rises_from": _iso(config, course.start),  # after the trajectory's start where a cause comes first
        "onset": "fast" if course.ramp <= FAST_ONSET_DAYS else "slow",
        "onset_days": round(course.ramp, 1),
        "power": round(course.power, 2),
        "signals": {stream: round(peak, 3) for stream, peak in sorted(course.peaks.items())},
        "eases_from": _iso(config, course.improve),
        "residual": round(course.residual, 3) if course.improve is not None else None,
    }


def build_truth(
    config: SimulationConfig, population: Population, plan: Plan, labelled: list[Labelled]
) -> dict[str, Any]:
    severe = [e for e in labelled if e.severe]
    first_severe: dict[str, Labelled] = {}
    for event in severe:
        if event.label not in first_severe or event.time < first_severe[event.label].time:
            first_severe[event.label] = event
    trajectories = []
    planted: set[str] = set()
    for trajectory in plan.trajectories:
        planted.update(trajectory.locations)
        major = first_severe.get(trajectory.id)
        trajectories.append(
            {
                "id": trajectory.id,
                "kind": trajectory.kind.value,
                "scope": trajectory.scope,
                "subject": trajectory.subject,
                "locations": trajectory.locations,
                "start": _iso(config, trajectory.start),
                "end": _iso(config, trajectory.end),
                "recovered": _iso(config, trajectory.recovered),
                "expected_min_level": "major" if major else trajectory.expected_min_level,
                "expected_level_before_major": trajectory.expected_min_level if major else None,
                "major_from": major.time if major else None,
                "major_event_id": major.event_id if major else None,
                "note": trajectory.note,
                "shapes": {loc: _shape(config, plan.courses[loc]) for loc in trajectory.locations},
            }
        )
    return {
        "version": TRUTH_VERSION,
        "seed": config.seed,
        "scale": config.scale,
        "variant": {"name": plan.variant.name, **plan.variant.parameters()},
        "start": _iso(config, 0.0),
        "end": _iso(config, float(config.days)),
        "locations": len(population.sites),
        "organisations": len(population.organisations),
        "authorities": len(population.local_authorities),
        "trajectories": trajectories,
        "severe_events": [
            {
                "label": e.label,
                "location_id": e.location_id,
                "time": e.time,
                "event_id": e.event_id,
                "type": e.event_type,
                "in_trajectory": e.label.startswith("T"),
                "expected_level": "major",
            }
            for e in sorted(severe, key=lambda e: (e.time, e.event_id))
        ],
        "ordinary_noise": [
            {
                "location_id": e.location_id,
                "time": e.time,
                "event_id": e.event_id,
                "type": e.event_type,
                "kind": e.noise,
                "expected_level": "none",
            }
            for e in sorted(labelled, key=lambda e: (e.time, e.event_id))
            if e.noise is not None
        ],
        # No trajectory planted. A few have a genuine severe event (see severe_events):
        # those must be Major from it; the rest should stay at none or Minor.
        "ordinary_locations": sorted(s.location_id for s in population.sites if s.location_id not in planted),
    }
