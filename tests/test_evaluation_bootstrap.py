"""Bootstrap intervals: clusters resampled within each world, fixed seed, every detector on
the same resamples."""

import numpy as np
import pytest

from schemas.risk import Level
from services.evaluation.bootstrap import clusters, columns, intervals, weights
from services.evaluation.measures import Case, Tally, World


def world(name: str, planted: int, ordinary: int) -> World:
    from services.evaluation.measures import Planted

    trajectories = tuple(
        Planted(f"T{i}", "gradual_decline", (f"L{i}",), 10.0, 100.0, Level.moderate, f"{name}/T{i}")
        for i in range(planted)
    )
    return World(
        scenario=name,
        days=100.0,
        planted=trajectories,
        ordinary=tuple(f"O{i}" for i in range(ordinary)),
        quiet=tuple(f"O{i}" for i in range(ordinary)),
        severe={},
        genuine=(),
        by_location={p.locations[0]: (p,) for p in trajectories},
    )


def detector(worlds: list[World], found_every: int, false_every: int) -> Tally:
    """Finds every `found_every`-th planted trajectory (one true alert each) and raises a
    false alert at every `false_every`-th ordinary location."""
    t = Tally()
    for w in worlds:
        for i, p in enumerate(w.planted):
            hit = i % found_every == 0
            t.cases.append(Case(p.id, p.kind, p.cluster, p.expected, (hit, hit), 5.0 if hit else None, False))
            if hit:
                t.alerts[p.cluster] += 1
                t.true_alerts[p.cluster] += 1
        for i, loc in enumerate(w.ordinary):
            if i % false_every == 0:
                t.alerts[w.cluster_of(loc)] += 1
    return t


WORLDS = [world("a", 20, 60), world("b", 10, 90)]


def test_each_resample_keeps_every_worlds_size_and_the_seed_fixes_them() -> None:
    names, strata = clusters(WORLDS)
    assert len(names) == 180 and strata.count(0) == 80 and strata.count(1) == 100
    w = weights(strata, resamples=50)
    assert (w[:, :80].sum(axis=1) == 80).all() and (w[:, 80:].sum(axis=1) == 100).all()
    assert np.array_equal(w, weights(strata, resamples=50))


def test_intervals_hold_the_point_estimates_and_a_perfect_detector_has_none_to_give() -> None:
    names, strata = clusters(WORLDS)
    policy = detector(WORLDS, found_every=1, false_every=1000)  # finds all, one false alarm per world
    baseline = [detector(WORLDS, found_every=k, false_every=f) for k, f in ((1, 2), (2, 10), (3, 50))]
    c = columns(names, [policy, *baseline], Level.moderate)
    result = intervals(c, [range(1, 4)], weights(strata, resamples=200))
    assert result.recall is not None and result.recall.low == result.recall.high == 1.0
    assert result.precision is not None and result.precision.low < 30 / 32 < result.precision.high + 1e-9
    # At the policy's precision (~94 %) the baseline's most precise setting finds a third.
    matched = result.matched[0]
    assert matched is not None and matched.low <= 0.4 and matched.high >= 0.3
    gain = result.gain[0]
    assert gain is not None and 0.3 < gain.low < gain.high < 0.9


def test_columns_count_only_the_trajectories_counted_at_the_level() -> None:
    names, _ = clusters(WORLDS)
    t = detector(WORLDS, found_every=1, false_every=1000)
    t.cases[0] = Case("T0", "under_reporting", "a/T0", Level.minor, (True, True), None, True)
    assert columns(names, [t], Level.moderate).planted.sum() == 29
    assert columns(names, [t], Level.minor).planted.sum() == 30
    assert columns(names, [t], Level.moderate).found[:, 0].sum() == pytest.approx(29)
