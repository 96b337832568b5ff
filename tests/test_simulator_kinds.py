"""The library of deteriorations: every kind moves the signals it names, as far as its
course says, in the events (a world planted densely so that each kind is measurable)."""

import random
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.directory import ServiceType
from services.simulator.config import SimulationConfig
from services.simulator.deteriorations import BURST, CLOSED, GRADUAL, INTENSITY, MEDICATION, STAFFING, draw_course
from services.simulator.generator import EventStream, days_between
from services.simulator.population import build_population
from services.simulator.spread import authority_cultures, location_factors
from services.simulator.trajectories import Kind, Plan, plan_world
from services.simulator.truth import build_truth
from services.simulator.variants import STANDARD
from tests.simulated_streams import stream_of

CONFIG = SimulationConfig(seed=4, locations=300, days=730)
START = datetime(2025, 1, 1, tzinfo=UTC)
# Dense: about 70 % of locations planted, each kind dozens of times (a real area: ~11 %).
SHARES = {
    Kind.gradual_decline: 0.12,
    Kind.staffing_collapse: 0.15,
    Kind.closed_culture: 0.15,
    Kind.medication_failure: 0.12,
    Kind.corporate_failure: 0.3,
    Kind.short_burst: 0.1,
    Kind.recovery: 0.04,
    Kind.under_reporting: 0.04,
}

Measured = dict[str, dict[str, list[tuple[float, float]]]]  # kind -> stream -> (expected, observed)


@pytest.fixture(scope="module")
def dense() -> tuple[Plan, dict[str, Any], dict[str, list[tuple[float, str]]]]:
    rng = random.Random(CONFIG.seed)
    population = build_population(rng, CONFIG.location_count, CONFIG.authority_count)
    plan = plan_world(rng, population, CONFIG.days, STANDARD, SHARES)
    plan.factors = location_factors(random.Random(1), (s.location_id for s in population.sites), STANDARD)
    plan.cultures = authority_cultures(random.Random(2), (a.ons_code for a in population.authorities), STANDARD)
    stream = EventStream(CONFIG, population, plan)
    events = list(stream)
    truth = build_truth(CONFIG, population, plan, stream.labelled)
    labelled = {e["event_id"] for e in truth["severe_events"]} | {e["event_id"] for e in truth["ordinary_noise"]}
    by_location: dict[str, list[tuple[float, str]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for event in events:
        name = stream_of(event)
        if name is None or event["id"] in labelled or (event["source"], event["id"]) in seen:
            continue
        seen.add((event["source"], event["id"]))
        by_location[event["subject"]].append((days_between(START, event["time"]), name))
    return plan, truth, by_location


def measure(
    plan: Plan, truth: dict[str, Any], by_location: dict[str, list[tuple[float, str]]], kind: str, phase: str = "peak"
) -> Measured:
    """Per stream a course moves (a thinned one named with a trailing '-'): events expected
    at the rate before the start, and seen, in the window at full stress (or after a
    recovery), location by location."""
    out: Measured = defaultdict(lambda: defaultdict(list))
    for trajectory in (t for t in truth["trajectories"] if t["kind"] == kind):
        start = days_between(START, trajectory["start"])
        for loc in trajectory["locations"]:
            course = plan.courses[loc]
            low, high = course.start + course.ramp, min(CONFIG.days, course.improve or 1e9, course.stops or 1e9)
            if phase == "after":
                low, high = course.recovered or 1e9, CONFIG.days
            if high - low < 14 or start < 30:
                continue
            for name, peak in course.peaks.items():
                before = sum(1 for t, s in by_location[loc] if s == name and t < start)
                seen = sum(1 for t, s in by_location[loc] if s == name and low <= t < high)
                key = name if peak >= 1 else f"{name}-"  # thinned: apart from where it rises
                out[key]["expected"].append((before / start * (high - low), seen))
                out[key]["peak"].append((before / start * (high - low) * peak, seen))
    return out


def ratio(measured: Measured, streams: tuple[str, ...], against: str = "expected") -> float:
    """Seen over expected, summed over the kind's locations and these streams."""
    pairs = [p for name in streams for p in measured.get(name, {}).get(against, [])]
    expected = sum(e for e, _ in pairs)
    assert expected > 10, (streams, expected)  # enough to measure
    return sum(s for _, s in pairs) / expected


def test_every_kind_moves_its_streams_as_far_as_its_course_says(
    dense: tuple[Plan, dict[str, Any], dict[str, list[tuple[float, str]]]],
) -> None:
    plan, truth, by_location = dense
    for kind in ("gradual_decline", "staffing_collapse", "closed_culture", "medication_failure", "corporate_failure"):
        measured = measure(plan, truth, by_location, kind)
        rising = tuple(n for n in measured if not n.endswith("-"))
        falling = tuple(n for n in measured if n.endswith("-"))
        # What was seen at full stress is what the course's peaks predict from the rate before.
        assert 0.8 < ratio(measured, rising, "peak") < 1.25, kind
        if falling:
            assert 0.7 < ratio(measured, falling, "peak") < 1.35, kind


def test_each_kind_moves_the_signals_that_name_it(
    dense: tuple[Plan, dict[str, Any], dict[str, list[tuple[float, str]]]],
) -> None:
    plan, truth, by_location = dense
    concerns = ("complaint_general", "complaint_staffing", "complaint_medication", "safeguarding_neglect")
    gradual = measure(plan, truth, by_location, "gradual_decline")
    assert ratio(gradual, concerns) > 2.0  # a slow 2-4x rise of concerns
    staffing = measure(plan, truth, by_location, "staffing_collapse")
    assert ratio(staffing, ("visit_missed", "visit_missed_time_critical")) > 3.0
    assert ratio(staffing, ("incident_fall",)) > 1.5 and ratio(staffing, ("complaint_staffing",)) > 2.5
    closed = measure(plan, truth, by_location, "closed_culture")
    assert ratio(closed, ("whistleblowing", "police_incident")) > 2.0
    assert ratio(closed, ("notification_abuse-", "notification_serious_injury-", "notification_police-")) < 0.6
    assert ratio(closed, ("safeguarding_other-",)) < 0.8  # the provider's referrals thin out
    medication = measure(plan, truth, by_location, "medication_failure")
    assert ratio(medication, ("incident_medication_error",)) > 2.0 and ratio(medication, ("ccg_medication",)) > 2.0
    under = measure(plan, truth, by_location, "under_reporting")
    assert all(name.endswith("-") for name in under) and ratio(under, tuple(under)) < 0.15  # near silent
    burst = measure(plan, truth, by_location, "short_burst")
    assert ratio(burst, tuple(burst)) > 2.0
    assert 0.8 < ratio(measure(plan, truth, by_location, "short_burst", "after"), tuple(burst)) < 1.25


def test_a_groups_locations_decline_from_one_cause_within_two_months(
    dense: tuple[Plan, dict[str, Any], dict[str, list[tuple[float, str]]]],
) -> None:
    plan, truth, _ = dense
    groups = [t for t in truth["trajectories"] if t["kind"] == "corporate_failure"]
    assert len(groups) >= 3
    for group in groups:
        courses = [plan.courses[loc] for loc in group["locations"]]
        assert len(courses) >= 3 and len({c.focus for c in courses}) == 1
        assert max(c.start for c in courses) - min(c.start for c in courses) <= 60
        assert not set(group["locations"]) & set(truth["ordinary_locations"])


@pytest.mark.parametrize(
    ("template", "service", "rises", "thins"),
    [
        (GRADUAL, ServiceType.care_home, {"complaint_general", "safeguarding_neglect"}, set()),
        (STAFFING, ServiceType.care_home, {"complaint_staffing"}, set()),
        (STAFFING, ServiceType.home_care, {"visit_missed", "visit_missed_time_critical"}, set()),
        (CLOSED, ServiceType.care_home, {"whistleblowing"}, {"safeguarding_other"}),
        (MEDICATION, ServiceType.nursing_home, {"incident_medication_error"}, set()),
    ],
)
def test_the_library_draws_shapes_within_each_kinds_ranges(
    template: Any, service: ServiceType, rises: set[str], thins: set[str]
) -> None:
    """`rises`: at least one of them rises in every trajectory; `thins`: each thins."""
    rng = random.Random(9)
    courses = [draw_course(rng, template, service, 10.0, 730, STANDARD) for _ in range(300)]
    ramps = [c.ramp for c in courses]
    assert template.ramp[0] <= min(ramps) and max(ramps) <= template.ramp[1]
    assert {c.power < 1 for c in courses} == ({True, False} if template.power[0] < 1 else {False})
    moved = [sorted(c.peaks) for c in courses]
    assert len({tuple(m) for m in moved}) > 20  # which signals move differs between failures
    for course in courses:
        assert any(course.peaks.get(name, 1) > 1 for name in rises)
        assert all(course.peaks.get(name, 1) < 1 for name in thins)
        limit = max(s.high for s in template.signals)
        assert all(0 < p <= 1 + (limit - 1) * INTENSITY[1] for p in course.peaks.values())
    eased = [c for c in courses if c.improve is not None]
    assert 0.5 * template.eases < len(eased) / len(courses) < 1.5 * template.eases + 0.01
    assert all(0.3 <= c.residual <= 0.7 for c in eased)


def test_a_burst_passes_within_weeks_and_moves_at_most_three_signals() -> None:
    rng = random.Random(9)
    for _ in range(200):
        course = draw_course(rng, BURST, ServiceType.home_care, 100.0, 730, STANDARD)
        assert 1 <= len(course.peaks) <= 3 and all(p >= 1 + (2 - 1) * INTENSITY[0] for p in course.peaks.values())
        assert course.improve is not None and course.recovered is not None
        assert course.recovered - course.start <= 10 + 30 + 30 and course.stress(course.recovered + 1) == 0
