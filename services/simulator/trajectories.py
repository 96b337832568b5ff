"""Planted trajectories: who fails how and when, and the one-off events the world schedules.

Pure. Each planted location gets a `Course` (course.py) drawn from the library of
deteriorations (deteriorations.py): a slow decline, a staffing collapse, a closed culture,
failing medicines management, several locations of one provider declining together, a
short burst that passes, a provider that stops reporting, a decline that recovers.

Also planned here: one-off events the world schedules (inspections, a manager leaving, a
warning notice), the rare genuine severe event at a good service, and ordinary one-off
poor care. Times are days from the start of the run.
"""

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from schemas.directory import ServiceType
from services.simulator.course import Course
from services.simulator.deteriorations import (
    BURST,
    CLOSED,
    GRADUAL,
    MEDICATION,
    RECOVERY,
    STAFFING,
    UNDER_REPORTING,
    Template,
    draw_course,
)
from services.simulator.population import Population, Site
from services.simulator.rates import INSPECTION_INTERVAL_DAYS
from services.simulator.variants import STANDARD, Variant

__all__ = ["Course", "Kind", "Plan", "Planned", "Trajectory", "plan_world"]


class Kind(StrEnum):
    gradual_decline = "gradual_decline"
    staffing_collapse = "staffing_collapse"
    closed_culture = "closed_culture"
    medication_failure = "medication_failure"
    corporate_failure = "corporate_failure"
    short_burst = "short_burst"
    under_reporting = "under_reporting"
    recovery = "recovery"


# The level the world says each kind deserves while active (the domain brief's rows): a
# slide in care is at least Moderate; a burst that passes and a provider gone quiet
# ("unusually low" concerns) at least Minor.
EXPECTED_LEVEL: dict[Kind, str] = {k: "moderate" for k in Kind} | {
    Kind.short_burst: "minor",
    Kind.under_reporting: "minor",
}
# Share of the population planted with each kind (ESTIMATE: enough of each to measure,
# few enough that ordinary locations dominate as they do in the country). Corporate
# failure: a share of organisations with 3 to 40 locations. Under-reporting: the variant's.
PLANT_SHARE: dict[Kind, float] = {
    Kind.gradual_decline: 0.02,
    Kind.staffing_collapse: 0.02,
    Kind.closed_culture: 0.01,
    Kind.medication_failure: 0.015,
    Kind.corporate_failure: 0.02,
    Kind.short_burst: 0.02,
    Kind.recovery: 0.012,
}
# (first, last) start as shares of the run: history before each start; under-reporting
# later, so that a detector has a year of the provider's reports to compare with.
START_WINDOW: dict[Kind, tuple[float, float]] = {k: (0.1, 0.5) for k in Kind} | {
    Kind.under_reporting: (0.35, 0.7),
    Kind.recovery: (0.1, 0.3),
    Kind.short_burst: (0.1, 0.85),
}
# Staffing collapse (ESTIMATES): the registered manager leaves first in most; most
# providers then notify the absence (Regulation 14: 28 days or more); half of the
# agencies that collapse hand back their packages and close.
MANAGER_LEAVES = 0.75
ABSENCE_NOTIFIED = 0.85
AGENCY_CLOSES = 0.5
# A group's failing reaches most of its locations (ESTIMATE: 60-100 %, at least three).
GROUP_REACH = (0.6, 1.0)
# The rare genuine severe event at an ordinary service, per bed or person a year
# (ESTIMATE: ~3 % of care homes and ~2.5 % of agencies a year; NF: "rare per location but
# not rare nationally: a small number of locations at Major at any time").
SEVERE_PER_UNIT_YEAR: dict[bool, float] = {True: 0.001, False: 0.0003}
ONE_OFF_SHARE = 0.3  # ordinary locations given one labelled piece of one-off poor care
# A workforce return flagging concerns about the manager at an ordinary service, with
# nothing else behind it (ESTIMATE 0.03 a location-year: capacity tracker and contract
# returns note such concerns at a few per cent of services a year, most resolved).
MANAGER_CONCERN_PER_YEAR = 0.03


@dataclass(frozen=True)
class Planned:
    """A single event the world schedules. `data` None: the generator composes it."""

    time: float
    location: str
    event_type: str  # short name, or "inspection"
    data: dict[str, Any] | None = None
    label: str | None = None  # the trajectory or truth entry it belongs to
    severe: bool = False
    noise: str | None = None  # the kind of one-off poor care, for the ground truth


@dataclass
class Trajectory:
    id: str
    kind: Kind
    scope: str  # location | organisation
    subject: str
    locations: list[str]
    start: float
    expected_min_level: str
    end: float | None = None
    recovered: float | None = None
    note: str = ""


@dataclass
class Plan:
    trajectories: list[Trajectory] = field(default_factory=list)
    courses: dict[str, Course] = field(default_factory=dict)
    planned: list[Planned] = field(default_factory=list)
    variant: Variant = STANDARD
    # Per location, per signal family; per authority or commissioner, per source (spread.py).
    factors: dict[str, dict[str, float]] = field(default_factory=dict)
    cultures: dict[str, dict[str, float]] = field(default_factory=dict)


def _sg(abuse: str, serious: bool = False, death: bool = False) -> dict[str, Any]:
    return {"abuse_type": abuse, "serious": serious, "linked_death": death}


def _decline_events(
    rng: random.Random, course: Course, location: str, label: str, days: int, closed: bool = False
) -> list[Planned]:
    """A regulator and safeguarding teams catch up late in a decline."""
    out: list[Planned] = []
    t70 = course.care_time_at(0.7)
    if math.isfinite(t70):
        inspected = t70 + rng.uniform(14, 60)
        out.append(Planned(inspected, location, "inspection", label=label))
        if rng.random() < 0.5:
            notice = {"action": "warning_notice", "quality_related": True}
            out.append(Planned(inspected + rng.uniform(7, 30), location, "cqc_enforcement", notice, label, True))
    t85 = course.care_time_at(0.85)
    if math.isfinite(t85) and rng.random() < 0.3:
        # What a closed culture hides comes out as abuse; a decline's as neglect.
        concern = _sg(rng.choice(["psychological", "physical"]) if closed else "neglect", True)
        out.append(Planned(t85 + rng.uniform(0, 60), location, "safeguarding_concern", concern, label, True))
    return [p for p in out if p.time < days]


def _pick(rng: random.Random, pool: list[Site], count: int, taken: set[str]) -> list[Site]:
    free = [s for s in pool if s.location_id not in taken]
    chosen = rng.sample(free, min(count, len(free)))
    taken.update(s.location_id for s in chosen)
    return chosen


def _count(share: float, population: int) -> int:
    return max(1, round(share * population))


class _Planter:
    """Adds trajectories to a plan; one location carries at most one."""

    def __init__(
        self, rng: random.Random, population: Population, days: int, variant: Variant, shares: Mapping[Kind, float]
    ) -> None:
        self.rng, self.population, self.days, self.variant = rng, population, days, variant
        self.shares = shares
        self.plan = Plan(variant=variant)
        self.taken: set[str] = set()

    def start(self, kind: Kind) -> float:
        low, high = START_WINDOW[kind]
        return self.rng.uniform(low, high) * self.days

    def add(self, kind: Kind, scope: str, subject: str, locations: list[str], start: float, **kw: Any) -> str:
        label = f"T{len(self.plan.trajectories) + 1:04d}"
        trajectory = Trajectory(label, kind, scope, subject, locations, start, EXPECTED_LEVEL[kind], **kw)
        self.plan.trajectories.append(trajectory)
        return label

    def own_rng(self) -> random.Random:
        """A generator of its own for one course's details: however many draws a variant
        makes there, the plan's other choices stay those of every variant of the seed."""
        return random.Random(self.rng.getrandbits(64))

    def course(self, site: Site, template: Template, start: float, **kw: Any) -> Course:
        service = site.location.service_type
        course = draw_course(self.own_rng(), template, service, start, self.days, self.variant, **kw)
        self.plan.courses[site.location_id] = course
        return course

    def catch_up(self, course: Course, location: str, label: str, closed: bool = False) -> None:
        self.plan.planned += _decline_events(self.own_rng(), course, location, label, self.days, closed)

    def sites(self, kind: Kind, eligible: Callable[[Site], bool]) -> list[Site]:
        pool = [s for s in self.population.sites if eligible(s)]
        return _pick(self.rng, pool, _count(self.shares[kind], len(self.population.sites)), self.taken)

    def declines(self, kind: Kind, template: Template, eligible: Callable[[Site], bool]) -> None:
        for site in self.sites(kind, eligible):
            start = self.start(kind)
            label = self.add(kind, "location", site.location_id, [site.location_id], start)
            course = self.course(site, template, start)
            self.catch_up(course, site.location_id, label, closed=kind is Kind.closed_culture)


def _corporate(p: _Planter) -> None:
    """Several locations of one provider slide together, from one cause, staggered by up
    to 60 days, each a little less steeply than a lone decline."""
    population, rng = p.population, p.rng
    groups = sorted(o for o, locs in population.organisations.items() if 3 <= len(locs) <= 40)
    wanted = _count(p.shares[Kind.corporate_failure], len(groups))
    by_id = {s.location_id: s for s in population.sites}
    for provider in rng.sample(groups, min(len(groups), wanted)):
        members = population.organisations[provider]
        template = rng.choice([GRADUAL, STAFFING, MEDICATION])
        reach = max(3, round(rng.uniform(*GROUP_REACH) * len(members)))
        declining = sorted(rng.sample(members, min(reach, len(members))), key=members.index)
        start = p.start(Kind.corporate_failure)
        label = p.add(Kind.corporate_failure, "organisation", provider, declining, start)
        for loc in declining:
            p.taken.add(loc)
            course = p.course(by_id[loc], template, start + rng.uniform(0, min(60, 0.2 * p.days)), scale=0.75)
            p.catch_up(course, loc, label)


def _staffing(p: _Planter) -> None:
    """The manager leaves (mostly), staff follow; an agency may close."""
    rng = p.rng
    for site in p.sites(Kind.staffing_collapse, lambda s: s.location.capacity >= 10):
        loc, start = site.location_id, p.start(Kind.staffing_collapse)
        agency = site.location.service_type is ServiceType.home_care
        closes = agency and rng.random() < AGENCY_CLOSES
        label = p.add(Kind.staffing_collapse, "location", loc, [loc], start)
        leaves = rng.random() < MANAGER_LEAVES
        # The decline follows the manager's going by up to a month.
        course = p.course(site, STAFFING, start + (rng.uniform(0, min(30, 0.1 * p.days)) if leaves else 0.0))
        if leaves:
            left = {"registered_manager_left": True, "manager_concerns": True}
            p.plan.planned.append(Planned(start, loc, "workforce", left, label))
            if rng.random() < ABSENCE_NOTIFIED:
                absence = {"category": "registered_manager_absence", "linked_to_safeguarding": False}
                p.plan.planned.append(Planned(start + 28, loc, "statutory_notification", absence, label))
        stop = course.start + course.ramp + rng.uniform(0, 21)
        if closes and stop < p.days:
            p.plan.trajectories[-1].end = stop
            p.plan.courses[loc] = course = _closing(course, stop + 7)
            disruption = {"category": "service_disruption", "linked_to_safeguarding": False}
            p.plan.planned.append(Planned(stop, loc, "statutory_notification", disruption, label))
        p.catch_up(course, loc, label)


def _closing(course: Course, stops: float) -> Course:
    return replace(course, stops=stops, improve=None, recovered=None, residual=0.0)


def _passing(p: _Planter, kind: Kind, template: Template, eligible: Callable[[Site], bool], note: str) -> None:
    """Trajectories that end: a burst that passes, a decline that recovers."""
    for site in p.sites(kind, eligible):
        start = p.start(kind)
        ramp_cap = 0.3 if kind is Kind.recovery else 0.5
        course = p.course(site, template, start, ramp_cap=ramp_cap)
        p.add(
            kind, "location", site.location_id, [site.location_id], start,
            end=course.improve, recovered=course.recovered, note=note,
        )  # fmt: skip


def plant_shares(variant: Variant) -> dict[Kind, float]:
    """Each kind's share of the population under this variant (at least one of each)."""
    shares = {kind: share * variant.plant_scale for kind, share in PLANT_SHARE.items()}
    return shares | {Kind.under_reporting: variant.under_reporting_share}


def plan_world(
    rng: random.Random,
    population: Population,
    days: int,
    variant: Variant = STANDARD,
    shares: Mapping[Kind, float] | None = None,
) -> Plan:
    """Chooses who fails how and when; every start falls inside the run. `shares`: each
    kind's share of the population (default `plant_shares(variant)`; tests that measure a
    kind plant more of it)."""
    p = _Planter(rng, population, days, variant, plant_shares(variant) if shares is None else shares)
    _corporate(p)
    homes = lambda s: s.care_home and s.location.capacity >= 15  # noqa: E731
    for site in p.sites(Kind.under_reporting, homes):
        start = p.start(Kind.under_reporting)
        p.add(Kind.under_reporting, "location", site.location_id, [site.location_id], start,
              note="notifications, incident returns and referrals stop")  # fmt: skip
        p.course(site, UNDER_REPORTING, start)
    # Closed cultures grow where people live (care homes, supported living), CQC's concern.
    residential = {ServiceType.care_home, ServiceType.nursing_home, ServiceType.supported_living}
    p.declines(
        Kind.closed_culture, CLOSED, lambda s: s.location.service_type in residential and s.location.capacity >= 8
    )
    _staffing(p)
    p.declines(Kind.medication_failure, MEDICATION, lambda s: s.location.capacity >= 5)
    p.declines(Kind.gradual_decline, GRADUAL, lambda s: True)
    _passing(p, Kind.recovery, RECOVERY, lambda s: True, "an improvement plan brings it back")
    _passing(p, Kind.short_burst, BURST, lambda s: s.location.capacity >= 5, "a burst that passes")
    for site in population.sites:
        p.plan.planned += _ordinary_events(rng, site, site.location_id in p.taken, days)
    p.plan.planned.sort(key=lambda x: (x.time, x.location, x.event_type))
    return p.plan


_SEVERE_KINDS: list[tuple[float, str]] = [
    (0.30, "death_linked"),
    (0.50, "serious_abuse"),
    (0.15, "enforcement"),
    (0.05, "criminal_proceedings"),
]
_ONE_OFF: list[tuple[str, str, dict[str, Any]]] = [
    ("medication_error", "complaint", {"category": "medication", "severity": "medium", "raised_by": "family"}),
    ("short_staffed_shift", "complaint", {"category": "staffing", "severity": "low", "raised_by": "family"}),
    ("poor_food", "complaint", {"category": "care", "severity": "low", "raised_by": "person_using_service"}),
    ("medication_flag", "ccg_flag", {"concern": "medication", "severity": "low"}),
]


def _ordinary_events(rng: random.Random, site: Site, planted: bool, days: int) -> list[Planned]:
    """Inspections everywhere; at ordinary locations, the rare severe event and one-off poor care."""
    loc = site.location_id
    out: list[Planned] = []
    interval = INSPECTION_INTERVAL_DAYS[site.rating]
    t = rng.uniform(0, interval)
    while t < days:
        out.append(Planned(t, loc, "inspection"))
        t += interval * rng.uniform(0.8, 1.1)
    if planted:
        return out
    rate = SEVERE_PER_UNIT_YEAR[site.care_home] * site.location.capacity
    if rng.random() < 1 - math.exp(-rate * days / 365):
        t = rng.uniform(0, days)
        kind = rng.choices([k for _, k in _SEVERE_KINDS], weights=[w for w, _ in _SEVERE_KINDS])[0]
        label = f"S-{loc}-{int(t)}"
        if kind == "death_linked":
            out.append(Planned(t, loc, "safeguarding_concern", _sg("neglect", True, True), label, True))
            death = {"category": "death", "linked_to_safeguarding": True}
            out.append(Planned(t + 0.1, loc, "statutory_notification", death, label, True))
        elif kind == "serious_abuse":
            abuse = rng.choice(["physical", "neglect", "sexual", "psychological"])
            out.append(Planned(t, loc, "safeguarding_concern", _sg(abuse, True), label, True))
        elif kind == "enforcement":
            notice = {"action": "warning_notice", "quality_related": True}
            out.append(Planned(t, loc, "cqc_enforcement", notice, label, True))
        else:
            proceedings = {"kind": "criminal_proceedings", "care_related": True}
            out.append(Planned(t, loc, "police_flag", proceedings, label, True))
        return out
    if rng.random() < ONE_OFF_SHARE:
        t = rng.uniform(0, days)
        if site.location.service_type is ServiceType.home_care and rng.random() < 0.5:
            visit = {"outcome": "missed", "time_critical": True}
            out.append(Planned(t, loc, "missed_visit", visit, f"N-{loc}", noise="one_missed_visit"))
        else:
            noise, event_type, data = rng.choice(_ONE_OFF)
            out.append(Planned(t, loc, event_type, data, f"N-{loc}", noise=noise))
    if rng.random() < 1 - math.exp(-MANAGER_CONCERN_PER_YEAR * days / 365):
        # One uncorroborated flag: no pattern behind it, so the world expects no level.
        flag = {"manager_concerns": True}
        out.append(Planned(rng.uniform(0, days), loc, "workforce", flag, f"M-{loc}", noise="manager_concern_flag"))
    return out
