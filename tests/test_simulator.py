"""`caresignal simulate`: the population, the base rates and the event stream (no broker)."""

import itertools
import json
import random
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.directory import ServiceType
from schemas.events import EventParser
from services.simulator.config import SimulationConfig
from services.simulator.population import CARE_HOMES, build_population
from services.simulator.rates import STREAMS, base_rate, expected_events_per_year
from services.simulator.run import build_world, simulate
from services.simulator.sinks import FileSink

REGION = SimulationConfig(seed=1)


@pytest.fixture(scope="module")
def region_events() -> list[dict[str, Any]]:
    from services.simulator.generator import EventStream

    population, plan = build_world(REGION)
    return list(EventStream(REGION, population, plan))


def run_to_file(config: SimulationConfig, folder: Path) -> tuple[bytes, bytes]:
    out, truth = folder / "events.ndjson", folder / "truth.json"
    simulate(config, FileSink(out), truth_path=truth)
    return out.read_bytes(), truth.read_bytes()


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    small = SimulationConfig(seed=7, locations=40, days=90)
    first = run_to_file(small, tmp_path / "a")
    again = run_to_file(small, tmp_path / "b")
    other = run_to_file(SimulationConfig(seed=8, locations=40, days=90), tmp_path / "c")
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]
    assert first[0].count(b"\n") > 1000


def test_every_event_validates_against_the_contract(region_events: list[dict[str, Any]]) -> None:
    # Event time runs ahead of wall time: validate as of the end of the run.
    parser = EventParser(future_tolerance=timedelta(days=1))
    end = datetime(2026, 1, 1, tzinfo=UTC)
    for event in region_events:
        parser.parse_obj(event, now=end)


def test_events_carry_no_personal_fields(region_events: list[dict[str, Any]]) -> None:
    allowed_refs = {"person_ref"}
    for event in region_events:
        assert set(event) == {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}
        for key, value in event["data"].items():
            if key in allowed_refs:
                assert len(value) == 32 and int(value, 16) >= 0
            else:
                # Enums, numbers, flags, dates and key-question lists only: no free text.
                assert (
                    isinstance(value, bool | int | float | list | dict)
                    or value.replace("_", "").isalnum()
                    or (key == "published" and len(value) == 10)
                ), (key, value)


def test_ids_are_unique_per_source_and_resends_are_identical(region_events: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in region_events:
        seen[event["source"], event["id"]].append(event)
    resent = [copies for copies in seen.values() if len(copies) > 1]
    assert all(len(copies) == 2 and copies[0] == copies[1] for copies in resent)
    share = len(resent) / len(seen)
    assert 0.002 < share < 0.01  # ESTIMATE 0.5 % resent by producers


def test_arrival_order_is_not_event_time_order(region_events: list[dict[str, Any]]) -> None:
    times = [e["time"] for e in region_events]
    backwards = sum(1 for a, b in itertools.pairwise(times) if b < a)
    assert backwards > len(times) * 0.01
    assert min(times) >= "2025-01-01" and max(times) < "2026-01-01"


def test_sources_name_one_producer_each(region_events: list[dict[str, Any]]) -> None:
    types_by_source: dict[str, set[str]] = defaultdict(set)
    for event in region_events:
        assert event["source"].startswith("urn:caresignal:source:")
        types_by_source[event["source"]].add(event["type"])
    # One system, one kind of record, except the NHS's health data and the capacity tracker.
    assert all(len(types) == 1 for types in types_by_source.values())
    assert len(types_by_source) >= 3 * 5


def test_national_population_in_published_proportions() -> None:
    population = build_population(random.Random(1), 25_000, 153)
    sites = population.sites
    assert len(sites) == 25_000 and len(population.local_authorities) == 153
    prefixes = Counter(a.ons_code[:3] for a in population.local_authorities)
    assert prefixes == {"E10": 21, "E06": 63, "E08": 36, "E09": 33}
    types = Counter(s.location.service_type for s in sites)
    care_homes = [s.location.capacity for s in sites if s.care_home]
    home_care = [s.location.capacity for s in sites if s.location.service_type is ServiceType.home_care]
    # ~14,000-15,000 care homes, ~455,000 beds (~31 a home); 8,900-10,000+ agencies, ~814,000 people.
    assert 13_000 <= len(care_homes) <= 15_500
    assert 420_000 <= sum(care_homes) <= 480_000
    assert 28 <= statistics.mean(care_homes) <= 34
    assert 8_500 <= len(home_care) <= 10_500
    assert 750_000 <= sum(home_care) <= 900_000
    assert statistics.median(home_care) < 0.75 * statistics.mean(home_care)  # a long tail
    assert types[ServiceType.supported_living] < 0.06 * len(sites)
    ratings = Counter(s.rating.value for s in sites)
    assert abs(ratings["good"] / len(sites) - 0.76) < 0.02  # "about three in four"
    assert abs(ratings["requires_improvement"] / len(sites) - 0.19) < 0.02  # "about one in five"
    assert 0.03 < ratings["outstanding"] / len(sites) < 0.07  # "a few per cent"
    sizes = sorted((len(v) for v in population.organisations.values()), reverse=True)
    assert 4_000 <= len(sizes) <= 12_000  # "several thousand"
    assert sizes.count(1) / len(sizes) > 0.6 and sizes[0] >= 80
    by_id = {s.location_id: s.location for s in sites}
    spanning = [
        p for p, locs in population.organisations.items() if len({by_id[loc].host_authority for loc in locs}) > 1
    ]
    assert len(spanning) > 200
    placed = Counter(p.location_id for p in population.placements)
    assert 0.1 < 1 - len(placed) / len(sites) < 0.25  # only self-funders
    assert sum(1 for n in placed.values() if n >= 3) > 2_000  # several placing authorities
    assert all(by_id[p.location_id] for p in population.placements)


def test_region_population_defaults() -> None:
    population, _ = build_world(REGION)
    assert len(population.sites) == 150 and len(population.local_authorities) == 3
    assert {s.location.host_authority for s in population.sites} <= {a.ons_code for a in population.authorities}
    assert sum(1 for s in population.sites if s.location.service_type in CARE_HOMES) > 60


@pytest.mark.parametrize("seed", [1, 2])
def test_national_average_is_about_240_events_per_location_year(seed: int) -> None:
    population = build_population(random.Random(seed), 25_000, 153)
    total = sum(
        expected_events_per_year(s.location.service_type, s.location.capacity, s.rating, nf_only=True)
        for s in population.sites
    )
    assert 225 <= total / len(population.sites) <= 260
    # With the signals NF's total does not count (incident returns, care reviews,
    # requirement notices): about 15 % more.
    everything = sum(
        expected_events_per_year(s.location.service_type, s.location.capacity, s.rating) for s in population.sites
    )
    assert 1.08 < everything / total < 1.25


def _expected(service: ServiceType, capacity: int, event_type: str) -> float:
    return sum(base_rate(s, service, capacity) for s in STREAMS if s.event_type == event_type)


def test_care_reviews_come_only_where_an_authority_placed_someone(region_events: list[dict[str, Any]]) -> None:
    population, _ = build_world(REGION)
    placed = defaultdict(int)
    for placement in population.placements:
        placed[placement.location_id] += placement.people_placed
    reviews = Counter(e["subject"] for e in region_events if e["type"] == "uk.caresignal.care_review.v1")
    assert reviews and all(placed[loc] > 0 for loc in reviews)
    # About 0.55 reviews a placed person a year (rated and trajectory factors aside).
    assert 0.4 < sum(reviews.values()) / sum(placed.values()) < 0.75
    findings = Counter(e["data"]["finding_level"] for e in region_events if e["type"].endswith("care_review.v1"))
    assert findings.most_common(1)[0][0] == "none"


def test_a_40_bed_home_sends_incident_returns_dominated_by_falls_and_medication_errors() -> None:
    home = ServiceType.care_home
    assert 20 <= _expected(home, 40, "provider_incident") <= 60
    medication = base_rate(next(s for s in STREAMS if s.name == "incident_medication_error"), home, 40)
    assert 10 <= medication <= 25


def test_a_40_bed_home_and_a_100_person_agency_look_like_the_published_figures() -> None:
    home = ServiceType.care_home
    assert 10 <= _expected(home, 40, "safeguarding_concern") <= 20
    assert 20 <= _expected(home, 40, "statutory_notification") <= 40
    assert 1 <= _expected(home, 40, "complaint") <= 6  # "a few"
    assert 2 <= _expected(home, 40, "ccg_flag") <= 8  # "a handful"
    assert 1 <= _expected(home, 40, "contract_monitoring") <= 2
    assert _expected(home, 40, "missed_visit") == 0
    agency = ServiceType.home_care
    assert 50 <= _expected(agency, 100, "missed_visit") <= 900  # "tens to hundreds"
    assert 1 <= _expected(agency, 100, "complaint") <= 10
    assert 2 <= _expected(agency, 100, "safeguarding_concern") <= 15


def test_a_region_year_matches_its_expected_rates(region_events: list[dict[str, Any]]) -> None:
    population, _ = build_world(REGION)
    expected = sum(
        expected_events_per_year(s.location.service_type, s.location.capacity, s.rating) for s in population.sites
    )
    per_location = len(region_events) / len(population.sites)
    # Planted declines add some; a site's own random factor moves the rest.
    assert 0.9 * expected / 150 <= per_location <= 1.2 * expected / 150
    # 150 locations: a few large agencies move the average a lot (national: ~240, tested above).
    assert 150 <= per_location <= 330
    counts = Counter(e["type"].split(".")[2] for e in region_events)
    assert counts.most_common(1)[0][0] == "missed_visit"
    beds = sum(s.location.capacity for s in population.sites if s.care_home)
    home_ids = {s.location_id for s in population.sites if s.care_home}
    concerns = sum(
        1 for e in region_events if e["subject"] in home_ids and e["type"].endswith("safeguarding_concern.v1")
    )
    assert 0.25 <= concerns / beds <= 0.55  # ~0.375 a bed


def test_winter_brings_outbreaks(region_events: list[dict[str, Any]]) -> None:
    months = Counter(
        e["time"][5:7] for e in region_events if e["type"].endswith("ccg_flag.v1") and '"infection' in json.dumps(e)
    )
    winter = months["12"] + months["01"] + months["02"]
    summer = months["06"] + months["07"] + months["08"]
    assert winter > 3 * summer
