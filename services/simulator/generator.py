"""The event stream: non-homogeneous Poisson per location and stream, in arrival order.

Pure (no I/O): yields CloudEvents as dicts. Each (location, stream) pair draws candidate
times at its highest possible rate and keeps each with probability rate(t) / highest
(thinning), where rate(t) = base x season x trajectory. A heap merges every pair, the
planned one-off events and the monthly workforce returns in event-time order; each event
then waits its producer's reporting delay in a second heap, so that what comes out is in
arrival order (and so out of event-time order, as real feeds are). A small share is sent
twice by the producer: same id, same content.
"""

import heapq
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.events import TYPE_BY_SHORT_NAME, Rating
from services.simulator.config import SimulationConfig
from services.simulator.payloads import People, inspection_rating, stream_data, workforce_return
from services.simulator.population import Population, Site
from services.simulator.rates import (
    AUTHORITY_PRODUCERS,
    COMMISSIONER_PRODUCERS,
    DUPLICATE_DELAY_DAYS,
    DUPLICATE_SHARE,
    RATING_FACTOR,
    REPORTING_DELAY_DAYS,
    REQUIREMENT_NOTICE_AFTER,
    STREAMS,
    WORKFORCE_RETURNS_PER_YEAR,
    base_rate,
    seasonal,
)
from services.simulator.spread import CULTURE_PRODUCERS, family_of
from services.simulator.trajectories import Course, Plan, Planned

SOURCE_PREFIX = "urn:caresignal:source:"
PRODUCER_OF: dict[str, str] = {
    "complaint": "complaints",
    "statutory_notification": "cqc-notifications",
    "missed_visit": "ecm",
    "ccg_flag": "icb-quality",
    "police_flag": "police",
    "safeguarding_concern": "safeguarding",
    "cqc_rating": "cqc-ratings",
    "cqc_enforcement": "cqc-enforcement",
    "contract_monitoring": "contracts",
    "whistleblowing": "cqc-intelligence",
    "workforce": "capacity-tracker",
    "health_use": "health-data",
    "provider_incident": "provider-returns",
    "care_review": "care-reviews",
}
_DAY = 86_400.0
_WORKFORCE = -1  # heap index marking a site's monthly workforce return


@dataclass(frozen=True)
class Labelled:
    """An emitted event the ground truth names (a severe event, one-off poor care...)."""

    label: str
    location_id: str
    time: str
    event_id: str
    event_type: str
    severe: bool
    noise: str | None


def source_of(producer: str, host: str, icb: str) -> str:
    """The CloudEvents source: one per upstream system (per area for local ones)."""
    if producer in AUTHORITY_PRODUCERS:
        return f"{SOURCE_PREFIX}{host}-{producer}"
    if producer in COMMISSIONER_PRODUCERS:
        return f"{SOURCE_PREFIX}{icb}-{producer}"
    return f"{SOURCE_PREFIX}{producer}"


def all_sources(population: Population) -> dict[str, set[str]]:
    """Every source the run may use, with the event types it sends."""
    sources: dict[str, set[str]] = {}
    for site in population.sites:
        host = site.location.host_authority
        for event_type, producer in PRODUCER_OF.items():
            sources.setdefault(source_of(producer, host, population.icb_of[host]), set()).add(event_type)
    return sources


class EventStream:
    """Iterate to get the run's events (dicts) in arrival order; then read `labelled`.

    A resent duplicate is the same dict object again: consumers must not mutate events.
    """

    def __init__(self, config: SimulationConfig, population: Population, plan: Plan) -> None:
        self.config = config
        self.population = population
        self.plan = plan
        self.rng = random.Random(f"{config.seed}:events")
        self.labelled: list[Labelled] = []
        self.emitted = 0
        self.duplicates = 0
        self._counters: dict[str, int] = {}
        self._sources: dict[tuple[str, str], tuple[str, str]] = {}
        self._start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
        self._start_epoch = self._start.timestamp()
        self._start_doy = self._start.timetuple().tm_yday - 1

    def _iso(self, t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._start_epoch + t * _DAY))

    def _event(self, site: Site, event_type: str, t: float, data: dict[str, Any]) -> dict[str, Any]:
        key = (site.location.host_authority, event_type)
        named = self._sources.get(key)
        if named is None:
            host = site.location.host_authority
            producer = PRODUCER_OF[event_type]
            source = source_of(producer, host, self.population.icb_of[host])
            local = producer in AUTHORITY_PRODUCERS or producer in COMMISSIONER_PRODUCERS
            owner = host if producer in AUTHORITY_PRODUCERS else self.population.icb_of[host]
            named = self._sources[key] = (source, f"{owner}-{producer}-" if local else f"{producer}-")
        source, prefix = named
        count = self._counters.get(source, 0) + 1
        self._counters[source] = count
        return {
            "specversion": "1.0",
            "id": f"{prefix}{count:09d}",
            "source": source,
            "type": TYPE_BY_SHORT_NAME[event_type],
            "time": self._iso(t),
            "subject": site.location_id,
            "datacontenttype": "application/json",
            "data": data,
        }

    def _culture(self, site: Site, producer: str) -> float:
        """The reporting culture of the area's system this stream comes through."""
        if producer not in CULTURE_PRODUCERS:
            return 1.0
        host = site.location.host_authority
        owner = host if producer in AUTHORITY_PRODUCERS else self.population.icb_of[host]
        return self.plan.cultures.get(owner, {}).get(producer, 1.0)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.run()

    def run(self, on_progress: Callable[[float], None] | None = None) -> Iterator[dict[str, Any]]:
        rng = self.rng
        days = float(self.config.days)
        sites = self.population.sites
        courses: list[Course | None] = [self.plan.courses.get(s.location_id) for s in sites]
        secret = f"{self.config.seed}:people"
        people = [People(secret, s.location_id, s.location.capacity) for s in sites]
        baselines = [(rng.uniform(0.0, 0.12), rng.uniform(0.03, 0.14)) for _ in sites]
        # Per stream index: (site index, stream, base rate a year, highest rate a day).
        pairs: list[tuple[int, str, float, float, float]] = []
        heap: list[tuple[float, int]] = []
        placed: dict[str, int] = {}
        for placement in self.population.placements:
            placed[placement.location_id] = placed.get(placement.location_id, 0) + placement.people_placed
        families = {s.name: family_of(s.name) for s in STREAMS}
        for si, site in enumerate(sites):
            quality = RATING_FACTOR[site.rating]
            course = courses[si]
            factors = self.plan.factors.get(site.location_id, {})
            for stream in STREAMS:
                placed_here = placed.get(site.location_id, 0)
                base = base_rate(stream, site.location.service_type, site.location.capacity, placed_here)
                # How this service and its area's systems differ from the average (spread.py).
                base *= factors.get(families[stream.name], 1.0) * self._culture(site, stream.producer)
                if stream.quality_sensitive:
                    base *= quality
                if base <= 0:
                    continue
                peak = (1 + stream.winter) * (course.max_multiplier(stream.name) if course else 1.0)
                highest = base * peak / 365.0
                pairs.append((si, stream.name, base, highest, stream.winter))
                heap.append((rng.expovariate(highest), len(pairs) - 1))
            heap.append((rng.uniform(0, 365.0 / WORKFORCE_RETURNS_PER_YEAR), _WORKFORCE - si))
        heapq.heapify(heap)
        streams = {s.name: s for s in STREAMS}
        planned = self.plan.planned
        next_planned = 0
        out: list[tuple[float, int, dict[str, Any]]] = []
        seq = 0
        step = 365.0 / WORKFORCE_RETURNS_PER_YEAR
        report_every = max(1, int(days / 200))
        reported = 0.0

        def emit(site_index: int, event_type: str, t: float, data: dict[str, Any]) -> dict[str, Any]:
            nonlocal seq
            event = self._event(sites[site_index], event_type, t, data)
            mean, cap = REPORTING_DELAY_DAYS[PRODUCER_OF[event_type]]
            arrival = t + min(cap, rng.expovariate(1 / mean))
            seq += 1
            heapq.heappush(out, (arrival, seq, event))
            if rng.random() < DUPLICATE_SHARE:
                seq += 1
                self.duplicates += 1
                heapq.heappush(out, (arrival + rng.uniform(*DUPLICATE_DELAY_DAYS), seq, event))
            return event

        index_of = {s.location_id: i for i, s in enumerate(sites)}
        while heap or next_planned < len(planned):
            if next_planned < len(planned) and (not heap or planned[next_planned].time <= heap[0][0]):
                due = planned[next_planned]
                next_planned += 1
                item: Planned | None = due
                t, index = due.time, 0
            else:
                t, index = heap[0]
                item = None
            if t >= days:
                if item is None:
                    heapq.heappop(heap)
                continue
            while out and out[0][0] <= t:
                self.emitted += 1
                yield heapq.heappop(out)[2]
            if on_progress is not None and t - reported >= report_every:
                reported = t
                on_progress(t / days)
            if item is not None:
                self._planned(item, index_of[item.location], courses, emit, rng)
                continue
            if index < 0:
                si = _WORKFORCE - index
                course = courses[si]
                if course is None or course.stops is None or t < course.stops:
                    staffing = course.care_stress(t) * course.staffing if course else 0.0
                    emit(si, "workforce", t, workforce_return(rng, *baselines[si], staffing))
                heapq.heapreplace(heap, (t + step * rng.uniform(0.9, 1.1), index))
                continue
            si, name, base, highest, winter = pairs[index]
            heapq.heapreplace(heap, (t + rng.expovariate(highest), index))
            course = courses[si]
            rate = base / 365.0
            if winter:
                rate *= seasonal(streams[name], self._start_doy + t)
            if course is not None:
                rate *= course.multiplier(name, t)
            if rng.random() * highest >= rate:
                continue
            stress, focus = (course.care_stress(t), course.focus) if course is not None else (0.0, "")
            emit(si, streams[name].event_type, t, stream_data(name, rng, stress, people[si], focus))
        while out:
            self.emitted += 1
            yield heapq.heappop(out)[2]
        if on_progress is not None:
            on_progress(1.0)

    def _planned(
        self,
        item: Planned,
        si: int,
        courses: list[Course | None],
        emit: Callable[[int, str, float, dict[str, Any]], dict[str, Any]],
        rng: random.Random,
    ) -> None:
        site = self.population.sites[si]
        course = courses[si]
        if course is not None and course.stops is not None and item.time >= course.stops:
            return  # the service has closed
        if item.event_type == "inspection":
            stress = course.care_stress(item.time) if course else 0.0
            published = datetime.fromtimestamp(self._start_epoch + item.time * _DAY, UTC).date()
            rating = inspection_rating(rng, site.rating, stress, published)
            event = emit(si, "cqc_rating", item.time, rating)
            # Published with the report: a breach found at the inspection.
            if rng.random() < REQUIREMENT_NOTICE_AFTER[Rating(rating["overall"])]:
                notice = {"action": "requirement_notice", "quality_related": True}
                emit(si, "cqc_enforcement", item.time + 0.01, notice)
        else:
            assert item.data is not None
            event = emit(si, item.event_type, item.time, dict(item.data))
        if item.label is not None:
            self.labelled.append(
                Labelled(
                    item.label,
                    site.location_id,
                    event["time"],
                    event["id"],
                    "cqc_rating" if item.event_type == "inspection" else item.event_type,
                    item.severe,
                    item.noise,
                )
            )


def days_between(start: datetime, iso: str) -> float:
    """Days from `start` to an event time written by this module."""
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (moment - start).total_seconds() / _DAY
