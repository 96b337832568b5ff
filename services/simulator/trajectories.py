"""Planted trajectories: how services fail, recover or go quiet, as functions of time.

Pure. A `Course` says how one location's signal rates move: a stress curve between 0
(ordinary) and 1 (the trajectory at its worst) and, per stream, the rate multiplier at
full stress. The shapes follow how services fail (the domain brief's patterns): a decline
shows as a series of medication errors, neglect, repeat injuries, complaints, missed GP
appointments and staff speaking up, long before a regulator acts. Peak multipliers are
ESTIMATES: services rated Inadequate have several times the concerns of Good ones.

Also planned here: one-off events the world schedules (inspections, a manager leaving, a
warning notice), the rare genuine severe event at a good service, and ordinary one-off
poor care. Times are days from the start of the run.
"""

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from schemas.directory import ServiceType
from services.simulator.population import Population, Site
from services.simulator.rates import INSPECTION_INTERVAL_DAYS


class Kind(StrEnum):
    gradual_decline = "gradual_decline"
    manager_departure = "manager_departure"
    homecare_collapse = "homecare_collapse"
    corporate_failure = "corporate_failure"
    under_reporting = "under_reporting"
    recovery = "recovery"


DECLINE_PEAKS: dict[str, float] = {
    "complaint_general": 3.0,
    "complaint_medication": 6.0,  # "a series of medication errors"
    "complaint_staffing": 4.0,
    "ccg_medication": 5.0,
    "ccg_pressure_ulcers": 4.0,  # "signs of neglect"
    "ccg_other": 2.5,
    "safeguarding_neglect": 4.0,
    "safeguarding_other": 1.5,
    "ae_attendance": 1.6,  # "more A&E attendances"
    "ae_repeat_injury": 6.0,  # "especially the same injury more than once"
    "missed_gp": 3.0,  # "a pattern of missed GP or dental appointments"
    "missed_dental": 3.0,
    "whistleblowing": 6.0,
    "contract_monitoring": 2.5,  # commissioners visit more once worried
    "notification_serious_injury": 2.0,
    "police_incident": 1.5,
    "visit_missed": 2.0,
    "visit_missed_time_critical": 3.0,
    "visit_late": 2.0,
    "incident_medication_error": 5.0,  # the provider's own audits show the series too
    "incident_pressure_ulcer": 4.0,
    "incident_missed_care": 4.0,
    "incident_fall": 1.5,
    "care_review": 1.5,  # authorities bring reviews forward once worried
}
MANAGER_PEAKS = DECLINE_PEAKS | {"complaint_staffing": 6.0, "whistleblowing": 8.0}
COLLAPSE_PEAKS: dict[str, float] = {
    "visit_missed": 8.0,  # "repeated missed visits by a home-care agency"
    "visit_missed_time_critical": 10.0,
    "visit_late": 5.0,
    "complaint_general": 4.0,
    "complaint_staffing": 8.0,
    "complaint_medication": 4.0,
    "safeguarding_neglect": 4.0,
    "whistleblowing": 6.0,
    "ccg_medication": 3.0,
    "ae_attendance": 1.5,
    "contract_monitoring": 2.5,
    "incident_missed_care": 6.0,
    "incident_medication_error": 3.0,
    "care_review": 1.5,
}
# The provider stops telling: its own notifications and concerns all but stop, while
# families, the NHS, police and commissioners go on as before.
UNDER_REPORTING_PEAKS: dict[str, float] = {
    "notification_death": 0.02,
    "notification_dols": 0.02,
    "notification_serious_injury": 0.02,
    "notification_abuse": 0.02,
    "notification_police": 0.02,
    "safeguarding_neglect": 0.05,
    "safeguarding_other": 0.05,
    # Its own incident returns dry up as well (the contract return is the provider's too).
    "incident_medication_error": 0.05,
    "incident_fall": 0.05,
    "incident_pressure_ulcer": 0.05,
    "incident_missed_care": 0.05,
    "incident_other": 0.05,
}
# Across an organisation each location slides, a little less steeply than a lone decline.
CORPORATE_PEAKS = {k: 1.0 + 0.75 * (v - 1.0) for k, v in DECLINE_PEAKS.items()}

# Share of the population planted with each kind (ESTIMATE: enough of each to measure,
# few enough that ordinary locations dominate as they do in the country).
PLANT_SHARE: dict[Kind, float] = {
    Kind.gradual_decline: 0.02,
    Kind.manager_departure: 0.012,
    Kind.homecare_collapse: 0.03,  # of home-care agencies
    Kind.corporate_failure: 0.02,  # of organisations with 3 to 40 locations
    Kind.under_reporting: 0.012,
    Kind.recovery: 0.012,
}
# The rare genuine severe event at an ordinary service, per bed or person a year
# (ESTIMATE: ~3 % of care homes and ~2.5 % of agencies a year; NF: "rare per location but
# not rare nationally: a small number of locations at Major at any time").
SEVERE_PER_UNIT_YEAR: dict[bool, float] = {True: 0.001, False: 0.0003}
ONE_OFF_SHARE = 0.3  # ordinary locations given one labelled piece of one-off poor care


@dataclass(frozen=True)
class Course:
    """How one location's rates move over time."""

    start: float
    ramp: float  # days from start to full stress
    peaks: dict[str, float]
    power: float = 1.5  # >1: slow at first, then faster
    improve: float | None = None  # recovery: stress falls from here...
    recovered: float | None = None  # ...to zero here
    stops: float | None = None  # the service closes: no events after this
    degrades_care: bool = True  # stress shows in payloads (severity, findings, staffing)

    def stress(self, t: float) -> float:
        if t <= self.start:
            return 0.0
        level = math.pow(min(1.0, (t - self.start) / self.ramp), self.power)
        if self.improve is not None and self.recovered is not None and t > self.improve:
            at_improve = math.pow(min(1.0, (self.improve - self.start) / self.ramp), self.power)
            return max(0.0, at_improve * (1.0 - (t - self.improve) / (self.recovered - self.improve)))
        return level

    def time_at(self, stress: float) -> float:
        """When the stress first reaches this level (inf if never)."""
        end = self.start + self.ramp * math.pow(stress, 1 / self.power)
        if self.improve is not None and end > self.improve:
            return math.inf
        return end

    def multiplier(self, stream: str, t: float) -> float:
        if self.stops is not None and t >= self.stops:
            return 0.0
        peak = self.peaks.get(stream)
        return 1.0 if peak is None else 1.0 + (peak - 1.0) * self.stress(t)

    def max_multiplier(self, stream: str) -> float:
        return max(1.0, self.peaks.get(stream, 1.0))


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


def _sg(abuse: str, serious: bool = False, death: bool = False) -> dict[str, Any]:
    return {"abuse_type": abuse, "serious": serious, "linked_death": death}


def _decline_events(rng: random.Random, course: Course, location: str, label: str, days: int) -> list[Planned]:
    """A regulator and safeguarding teams catch up late in a decline."""
    out: list[Planned] = []
    t70 = course.time_at(0.7)
    if math.isfinite(t70):
        inspected = t70 + rng.uniform(14, 60)
        out.append(Planned(inspected, location, "inspection", label=label))
        if rng.random() < 0.5:
            notice = {"action": "warning_notice", "quality_related": True}
            out.append(Planned(inspected + rng.uniform(7, 30), location, "cqc_enforcement", notice, label, True))
    t85 = course.time_at(0.85)
    if math.isfinite(t85) and rng.random() < 0.3:
        out.append(
            Planned(t85 + rng.uniform(0, 60), location, "safeguarding_concern", _sg("neglect", True), label, True)
        )
    return [p for p in out if p.time < days]


def _pick(rng: random.Random, pool: list[Site], count: int, taken: set[str]) -> list[Site]:
    free = [s for s in pool if s.location_id not in taken]
    chosen = rng.sample(free, min(count, len(free)))
    taken.update(s.location_id for s in chosen)
    return chosen


def _count(share: float, population: int) -> int:
    return max(1, round(share * population))


def plan_world(rng: random.Random, population: Population, days: int) -> Plan:
    """Chooses who fails how and when; every start falls inside the run."""
    plan = Plan()
    sites = population.sites
    taken: set[str] = set()
    n = len(sites)
    ramp_cap = 0.5 * days  # short runs compress trajectories so that they show

    def add(kind: Kind, scope: str, subject: str, locs: list[str], start: float, level: str, **kw: Any) -> str:
        label = f"T{len(plan.trajectories) + 1:04d}"
        plan.trajectories.append(Trajectory(label, kind, scope, subject, locs, start, level, **kw))
        return label

    # Corporate failure: an organisation of 3+ locations whose services slide together.
    groups = sorted((p for p, locs in population.organisations.items() if 3 <= len(locs) <= 40))
    for provider in rng.sample(groups, min(len(groups), _count(PLANT_SHARE[Kind.corporate_failure], len(groups)))):
        members = population.organisations[provider]
        start = rng.uniform(0.1, 0.45) * days
        label = add(Kind.corporate_failure, "organisation", provider, list(members), start, "moderate")
        for loc in members:
            taken.add(loc)
            course = Course(
                start + rng.uniform(0, min(60, 0.2 * days)), min(rng.uniform(150, 240), ramp_cap), CORPORATE_PEAKS
            )
            plan.courses[loc] = course
            plan.planned += _decline_events(rng, course, loc, label, days)

    home_care = [s for s in sites if s.location.service_type is ServiceType.home_care and s.location.capacity >= 20]
    for site in _pick(
        rng, home_care, _count(PLANT_SHARE[Kind.homecare_collapse] * len(home_care) / max(n, 1), n), taken
    ):
        loc, start = site.location_id, rng.uniform(0.1, 0.5) * days
        ramp = min(rng.uniform(60, 120), ramp_cap)
        stop = start + ramp + rng.uniform(0, 21)
        ends = rng.random() < 0.6 and stop < days
        label = add(Kind.homecare_collapse, "location", loc, [loc], start, "moderate", end=stop if ends else None)
        plan.courses[loc] = Course(start, ramp, COLLAPSE_PEAKS, power=2.0, stops=stop + 7 if ends else None)
        if ends:
            disruption = {"category": "service_disruption", "linked_to_safeguarding": False}
            plan.planned.append(Planned(stop, loc, "statutory_notification", disruption, label))
        plan.planned += _decline_events(rng, plan.courses[loc], loc, label, days)

    homes = [s for s in sites if s.care_home and s.location.capacity >= 15]
    for site in _pick(rng, homes, _count(PLANT_SHARE[Kind.under_reporting], n), taken):
        loc, start = site.location_id, rng.uniform(0.35, 0.7) * days
        add(Kind.under_reporting, "location", loc, [loc], start, "minor", note="notifications and concerns stop")
        plan.courses[loc] = Course(start, min(14.0, ramp_cap), UNDER_REPORTING_PEAKS, power=1.0, degrades_care=False)

    for kind in (Kind.gradual_decline, Kind.manager_departure, Kind.recovery):
        for site in _pick(rng, sites, _count(PLANT_SHARE[kind], n), taken):
            loc, start = site.location_id, rng.uniform(0.1, 0.5 if kind is not Kind.recovery else 0.3) * days
            if kind is Kind.gradual_decline:
                label = add(kind, "location", loc, [loc], start, "moderate")
                course = Course(start, min(rng.uniform(150, 270), ramp_cap), DECLINE_PEAKS)
            elif kind is Kind.manager_departure:
                label = add(kind, "location", loc, [loc], start, "moderate", note="manager leaves, then decline")
                left = {"registered_manager_left": True, "manager_concerns": True}
                absence = {"category": "registered_manager_absence", "linked_to_safeguarding": False}
                plan.planned.append(Planned(start, loc, "workforce", left, label))
                # Regulation 14: an absence of 28 days or more must be notified.
                plan.planned.append(Planned(start + 28, loc, "statutory_notification", absence, label))
                course = Course(start + min(30, 0.1 * days), min(rng.uniform(120, 200), ramp_cap), MANAGER_PEAKS)
            else:
                ramp = min(rng.uniform(90, 150), 0.3 * days)
                improve = start + ramp + rng.uniform(0, 0.05 * days)
                recovered = improve + min(90.0, 0.25 * days)
                label = add(kind, "location", loc, [loc], start, "moderate", end=improve, recovered=recovered)
                course = Course(start, ramp, DECLINE_PEAKS, improve=improve, recovered=recovered)
            plan.courses[loc] = course
            if kind is not Kind.recovery:
                plan.planned += _decline_events(rng, course, loc, label, days)

    for site in sites:
        plan.planned += _ordinary_events(rng, site, site.location_id in taken, days)
    plan.planned.sort(key=lambda p: (p.time, p.location, p.event_type))
    return plan


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
    elif rng.random() < ONE_OFF_SHARE:
        t = rng.uniform(0, days)
        if site.location.service_type is ServiceType.home_care and rng.random() < 0.5:
            visit = {"outcome": "missed", "time_critical": True}
            out.append(Planned(t, loc, "missed_visit", visit, f"N-{loc}", noise="one_missed_visit"))
        else:
            noise, event_type, data = rng.choice(_ONE_OFF)
            out.append(Planned(t, loc, event_type, data, f"N-{loc}", noise=noise))
    return out
