"""The own-history detector (Poisson CUSUM against an empirical-Bayes own rate) on small
synthetic worlds whose answers are known."""

import math
import random

import numpy as np
import pytest

from services.evaluation.own_history import (
    OwnRule,
    Settings,
    paths,
    peer_groups,
    poisson_cusum,
    rule_alarms,
    shrunk_rates,
)
from services.evaluation.signals import SIGNAL_INDEX, Observations

LN2 = math.log(2)


def test_cusum_known_answer() -> None:
    # Expected 1 a day, ratio 2: each day adds x ln 2 - 1, and the sum never goes below 0.
    path = poisson_cusum([0, 2, 0, 3, 1], [1.0] * 5, 2.0)
    assert path == pytest.approx([0.0, 2 * LN2 - 1, 0.0, 3 * LN2 - 1, 4 * LN2 - 2])


def test_shrinkage_judges_a_new_service_by_its_peers_and_an_old_one_by_itself() -> None:
    # Five peers at 1, 2, 3, 4, 5 a unit: a real spread. One with a tiny exposure is pulled
    # almost to the group mean; with a long one it keeps nearly its own rate.
    rates = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    exposure = np.array([[1000.0], [1000.0], [1000.0], [1000.0], [1000.0]])
    counts = rates[:, None] * exposure
    groups = np.zeros(5, dtype=np.int64)
    long = shrunk_rates(counts, exposure, groups)
    assert long[:, 0] == pytest.approx(rates, rel=0.01)
    short_exposure = exposure.copy()
    short_exposure[4, 0] = 0.01
    short_counts = counts.copy()
    short_counts[4, 0] = 0.0  # nothing seen yet
    short = shrunk_rates(short_counts, short_exposure, groups)
    mean = (short_counts[:, 0].sum() + 0.5) / short_exposure[:, 0].sum()
    assert short[4, 0] == pytest.approx(mean, rel=0.05)


def test_peers_without_a_spread_are_all_judged_at_their_mean() -> None:
    # Identical Poisson services: the spread between them is all Poisson noise, so every
    # service's rate is its group's.
    rng = np.random.default_rng(1)
    exposure = np.full((40, 1), 50.0)
    counts = rng.poisson(2.0 * exposure)
    rates = shrunk_rates(counts.astype(float), exposure, np.zeros(40, dtype=np.int64))
    assert rates.std() < 0.05 * rates.mean()


def test_peer_groups_merge_small_size_bands_and_pool_small_types() -> None:
    types = ["care_home"] * 10 + ["care_home"] * 3 + ["home_care"] * 9 + ["shared_lives"] * 2
    capacities = [10] * 10 + [60] * 3 + [30] * 9 + [5] * 2
    groups = peer_groups(types, capacities, min_group=8).tolist()
    assert len(set(groups[:13])) == 1  # three large homes join the small ones
    assert len(set(groups[13:22])) == 1 and groups[13] != groups[0]
    assert groups[22] == groups[23] and groups[22] not in groups[:22]


def world(rates: list[tuple[float, float]], days: int, double_from: int | None = None, seed: int = 3) -> Observations:
    """Care homes of 30 beds with complaints at (rate per bed-year) before and after
    `double_from`; a Poisson stream per location, one event a row."""
    rng = random.Random(seed)
    obs = Observations([f"L{i}" for i in range(len(rates))], [30] * len(rates), ["care_home"] * len(rates), days)
    for i, (before, after) in enumerate(rates):
        t = 0.0
        while True:
            per_day = (after if double_from is not None and t >= double_from else before) * 30 / 365
            t += rng.expovariate(per_day)
            if t >= days:
                break
            obs.location.append(i)
            obs.time.append(t)
            obs.signal.append(SIGNAL_INDEX["complaint"])
            obs.concern.append(True)
    return obs


def spread_peers() -> list[tuple[float, float]]:
    """Twelve stable peers whose rates differ by about a third, around 2 a bed-year."""
    rng = random.Random(11)
    return [(r, r) for r in (2.0 * rng.lognormvariate(-0.045, 0.3) for _ in range(12))]


SEEDS = range(3, 13)
RULE = OwnRule(2.0, 10.0)
SETTINGS = Settings(ratios=(2.0,), levels=(10.0,))


def test_a_service_that_doubles_its_rate_is_caught_and_its_stable_peers_are_not() -> None:
    # 60 complaints a year doubling to 120 on day 300: the CUSUM gains about 0.06 a day.
    caught, peers_alarmed = [], 0
    for seed in SEEDS:
        alarms = rule_alarms(paths(world([(2.0, 4.0), *spread_peers()], 700, 300, seed), SETTINGS), RULE)
        caught.append(alarms["L0"][0][0] if "L0" in alarms else None)
        peers_alarmed += len(alarms) - ("L0" in alarms)
    assert all(t is not None and 300 < t < 650 for t in caught)
    assert peers_alarmed <= 1


def test_a_stable_high_rate_service_is_judged_against_itself() -> None:
    # Two and a half times its peers' mean for the whole run: high, but not rising. Judged
    # against its peers it would be alarmed in every run; against itself, in few.
    alarmed = 0
    for seed in SEEDS:
        alarms = rule_alarms(paths(world([(5.0, 5.0), *spread_peers()], 700, None, seed), SETTINGS), RULE)
        alarmed += "L0" in alarms
    assert alarmed <= 2
    obs = world([(5.0, 5.0), *spread_peers()], 700, None, SEEDS[0])
    daily = [0.0] * 700
    for loc, t in zip(obs.location, obs.time, strict=True):
        daily[int(t)] += loc == 0
    against_peers = poisson_cusum(daily, [2.0 * 30 / 365] * 700, 2.0)
    assert max(against_peers[:150]) > 10.0


PEERS = [(2.0, 2.0)] * 12


def test_the_summed_cusum_and_the_per_signal_one_agree_for_one_signal() -> None:
    obs = world([(2.0, 4.0), *PEERS], days=400, double_from=200)
    p = paths(obs, Settings(ratios=(2.0,), levels=(6.0,)))
    assert np.allclose(p.highest, p.summed)
    assert rule_alarms(p, OwnRule(2.0, 6.0, "any")) == rule_alarms(p, OwnRule(2.0, 6.0, "sum"))


def test_the_vectorised_path_is_the_cusum_of_the_daily_counts() -> None:
    obs = world([(2.0, 4.0), *PEERS], days=200, double_from=100)
    settings = Settings(ratios=(2.0,), guard_days=50, learning_days=20, reference_share=0.0, allowance=1.0)
    p = paths(obs, settings)
    # Rebuild the first location's expected rates by hand for the first days after learning,
    # while the reference is the first 20 days.
    counts = np.zeros((200, len(obs.locations)))
    for loc, t in zip(obs.location, obs.time, strict=True):
        counts[int(t), loc] += 1
    reference = counts[:20].sum(axis=0)[:, None]
    exposure = np.full((len(obs.locations), 1), 30 * 20 / 365)
    groups = np.zeros(len(obs.locations), dtype=np.int64)
    expected = shrunk_rates(reference, exposure, groups, allowance=1.0)[0, 0] * 30 / 365
    by_hand = poisson_cusum(counts[20:70, 0].tolist(), [expected] * 50, 2.0)
    assert p.highest[0, 20:70, 0] == pytest.approx(by_hand)
    assert (p.highest[0, :20] == 0).all()  # nothing in the learning period
