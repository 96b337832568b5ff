"""World variants and the spread between services: measured where they act (the drawn
factors over a large population, the events), and variants differ only as named."""

import dataclasses
import json
import random
import statistics
from collections import Counter
from pathlib import Path

import pytest

from services.cli import main
from services.simulator.config import SimulationConfig
from services.simulator.generator import EventStream
from services.simulator.rates import RATING_FACTOR, STREAMS, base_rate
from services.simulator.run import build_world, simulate
from services.simulator.sinks import FileSink
from services.simulator.spread import (
    CULTURE_PRODUCERS,
    FAMILIES,
    OWN_REPORT_FAMILIES,
    authority_cultures,
    family_of,
    location_factors,
)
from services.simulator.trajectories import Kind
from services.simulator.truth import build_truth
from services.simulator.variants import STANDARD, VARIANTS, UnknownVariant, Variant, variant_named
from tests.simulated_streams import stream_of

NAMED = ("standard", "low-spread", "high-spread", "mild", "severe", "under-reporting")


def _cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.fmean(values)


def test_the_presets_the_evaluation_runs_exist_and_the_standard_world_is_the_default() -> None:
    assert set(NAMED) <= set(VARIANTS)
    assert SimulationConfig().variant == "standard" and VARIANTS["standard"] is STANDARD
    assert STANDARD.spread_cv == pytest.approx(0.3)  # services of one type and size differ by about a third
    with pytest.raises(UnknownVariant, match="low-spread"):
        SimulationConfig(variant="no-such-world")
    with pytest.raises(ValueError, match="severity"):
        Variant("broken", "", severity=0.0)


@pytest.mark.parametrize("name", NAMED)
def test_the_spread_measured_on_a_large_population_is_the_variants(name: str) -> None:
    variant = VARIANTS[name]
    factors = location_factors(random.Random(5), (f"1-{i}" for i in range(20_000)), variant)
    for family in FAMILIES:
        values = [row[family] for row in factors.values()]
        cv = variant.own_report_cv if family in OWN_REPORT_FAMILIES else variant.spread_cv
        assert statistics.fmean(values) == pytest.approx(1.0, abs=0.01), family
        assert _cv(values) == pytest.approx(cv, rel=0.06), family
        assert min(values) > 0
    cultures = authority_cultures(random.Random(6), (f"E{i:08d}" for i in range(3_000)), variant)
    for producer in CULTURE_PRODUCERS:
        values = [row[producer] for row in cultures.values()]
        assert statistics.fmean(values) == pytest.approx(1.0, abs=0.02)
        assert _cv(values) == pytest.approx(variant.authority_cv, rel=0.08), producer


def _measured_spread(variant: Variant) -> float:
    """The spread between ordinary services' counts beyond Poisson noise: var(observed /
    expected) less the Poisson part (mean 1 / expected), pooled over signal families."""
    config = SimulationConfig(seed=2, locations=300, days=365)
    alike = dataclasses.replace(variant, authority_cv=0.0)  # areas alike: the services' own spread alone
    population, plan = build_world(config, alike)
    stream = EventStream(config, population, plan)
    events = list(stream)
    truth = build_truth(config, population, plan, stream.labelled)
    labelled = {e["event_id"] for e in truth["severe_events"]} | {e["event_id"] for e in truth["ordinary_noise"]}
    observed: Counter[tuple[str, str]] = Counter()
    seen: set[tuple[str, str]] = set()
    for event in events:
        name = stream_of(event)
        if name is not None and event["id"] not in labelled and (event["source"], event["id"]) not in seen:
            seen.add((event["source"], event["id"]))
            observed[event["subject"], family_of(name)] += 1
    placed: Counter[str] = Counter()
    for placement in population.placements:
        placed[placement.location_id] += placement.people_placed
    ratios, poisson = [], []
    ordinary = set(truth["ordinary_locations"])
    for site in (s for s in population.sites if s.location_id in ordinary):
        loc, kind = site.location_id, site.location.service_type
        for family in ("incidents", "safeguarding", "notifications", "health_use", "visits"):
            quality = RATING_FACTOR[site.rating]
            expected = sum(
                base_rate(s, kind, site.location.capacity, placed[loc]) * (quality if s.quality_sensitive else 1.0)
                for s in STREAMS
                if family_of(s.name) == family
            )
            if expected >= 8:  # enough events that the spread shows through the noise
                ratios.append(observed[loc, family] / expected)
                poisson.append(1 / expected)
    assert len(ratios) > 500
    return float(max(0.0, statistics.pvariance(ratios) - statistics.fmean(poisson)) ** 0.5)


def test_the_spread_reaches_the_events_and_differs_between_variants_as_named() -> None:
    low, standard, high = (_measured_spread(VARIANTS[n]) for n in ("low-spread", "standard", "high-spread"))
    assert low == pytest.approx(0.1, abs=0.06)
    assert standard == pytest.approx(0.3, abs=0.06)
    assert high == pytest.approx(0.5, abs=0.08)


def test_variants_of_one_seed_differ_only_as_named() -> None:
    config = SimulationConfig(seed=8, locations=400, days=730)
    worlds = {name: build_world(config, name) for name in NAMED}
    population, standard = worlds["standard"]
    for other, _ in worlds.values():  # one population for every variant of a seed
        assert [s.location for s in other.sites] == [s.location for s in population.sites]
    # The spread: the same services run high or low in every variant, further apart in high-spread.
    order = {n: sorted(standard.factors, key=lambda loc, n=n: worlds[n][1].factors[loc]["safeguarding"]) for n in NAMED}
    assert order["low-spread"] == order["standard"] == order["high-spread"]
    spreads = [
        _cv([f["complaints"] for f in worlds[n][1].factors.values()]) for n in ("low-spread", "standard", "high-spread")
    ]
    assert spreads == sorted(spreads) and spreads[0] < 0.15 < 0.4 < spreads[2]
    # Severity: the same trajectories, each departure from base scaled by the variant's severity.
    for name in ("mild", "severe"):
        plan, severity = worlds[name][1], VARIANTS[name].severity
        assert [(t.kind, t.subject, t.start) for t in plan.trajectories] == [
            (t.kind, t.subject, t.start) for t in standard.trajectories
        ]
        for loc, course in plan.courses.items():
            base = standard.courses[loc]
            assert course.ramp == base.ramp and course.peaks.keys() == base.peaks.keys()
            for stream, peak in course.peaks.items():
                expected = base.peaks[stream] ** severity if peak < 1 else 1 + (base.peaks[stream] - 1) * severity
                assert peak == pytest.approx(expected), (name, stream)
    # Under-reporting: more providers go quiet, and declining ones send a third of their own reports' rise.
    quiet = {
        n: sum(t.kind is Kind.under_reporting for t in worlds[n][1].trajectories)
        for n in ("standard", "under-reporting")
    }
    assert quiet["under-reporting"] >= 3 * quiet["standard"]

    def own_rise(name: str) -> float:
        courses = worlds[name][1].courses.values()
        rises = [p - 1 for c in courses for s, p in c.peaks.items() if p > 1 and family_of(s) in OWN_REPORT_FAMILIES]
        return statistics.fmean(rises)

    assert own_rise("under-reporting") < 0.45 * own_rise("standard")


def _run(config: SimulationConfig, folder: Path) -> tuple[bytes, bytes]:
    out, truth = folder / "events.ndjson", folder / "truth.json"
    simulate(config, FileSink(out), truth_path=truth)
    return out.read_bytes(), truth.read_bytes()


def test_the_same_seed_and_variant_give_identical_bytes_and_another_variant_differs(tmp_path: Path) -> None:
    mild = SimulationConfig(seed=7, locations=40, days=90, variant="mild")
    first, again = _run(mild, tmp_path / "a"), _run(mild, tmp_path / "b")
    assert first == again
    other = _run(dataclasses.replace(mild, variant="high-spread"), tmp_path / "c")
    assert first[0] != other[0]
    assert json.loads(first[1])["variant"] == {"name": "mild", **VARIANTS["mild"].parameters()}
    # A variant given to build_world is the variant named in the config.
    named = build_world(mild)[1]
    given = build_world(dataclasses.replace(mild, variant="standard"), variant_named("mild"))[1]
    assert named.courses == given.courses and named.factors == given.factors


def test_simulate_takes_a_variant_and_refuses_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", "--seed", "3", "--locations", "20", "--days", "30", "--out", str(tmp_path / "e.ndjson")]
    assert main([*args, "--variant", "severe", "--truth", str(tmp_path / "t.json")]) == 0
    truth = json.loads((tmp_path / "t.json").read_text())
    assert truth["variant"]["name"] == "severe" and truth["variant"]["severity"] == pytest.approx(1.6)
    assert {t["kind"] for t in truth["trajectories"]} <= {k.value for k in Kind}
    assert all(t["shapes"] and set(t["shapes"]) == set(t["locations"]) for t in truth["trajectories"])
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--variant", "gentle"])
    assert exit_.value.code == 2 and "invalid choice: 'gentle'" in capsys.readouterr().err
