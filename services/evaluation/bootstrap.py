"""Bootstrap intervals on recall and precision: locations resampled, with a fixed seed.

Pure (numpy). The unit resampled is a *cluster*: a planted trajectory's locations
together (a corporate failure's several locations fall or stay together), or one
ordinary location; clusters are drawn with replacement within each scenario, so every
resample has each world's size. Every detector is scored on the same resamples, so a
difference between the policy and a baseline at matched precision has its own interval.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from schemas.risk import Level
from services.evaluation.frontier import recall_at
from services.evaluation.measures import Tally, World, counted

Floats = npt.NDArray[np.float64]

RESAMPLES = 1000
SEED = 20_261_117
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval95:
    low: float
    high: float


def clusters(worlds: Sequence[World]) -> tuple[list[str], list[int]]:
    """Every cluster of these worlds, and the index of the world each belongs to."""
    names: list[str] = []
    strata: list[int] = []
    for i, w in enumerate(worlds):
        mine = sorted({p.cluster for p in w.planted} | {w.cluster_of(loc) for loc in w.ordinary})
        names += mine
        strata += [i] * len(mine)
    return names, strata


def weights(strata: Sequence[int], resamples: int = RESAMPLES, seed: int = SEED) -> Floats:
    """resamples x clusters: how often each cluster is drawn in each resample."""
    rng = np.random.default_rng(seed)
    strata_a = np.array(strata)
    out = np.zeros((resamples, len(strata)))
    for s in np.unique(strata_a):
        members = np.flatnonzero(strata_a == s)
        draws = rng.integers(0, len(members), size=(resamples, len(members)))
        for b in range(resamples):
            np.add.at(out[b], members[draws[b]], 1.0)
    return out


@dataclass(frozen=True)
class Columns:
    """Per cluster: planted trajectories counted at a level and those found within 270
    days, alerts and true alerts; one column per detector."""

    planted: Floats  # clusters
    found: Floats  # clusters x detectors
    alerts: Floats
    true: Floats


def columns(names: Sequence[str], tallies: Sequence[Tally], level: Level) -> Columns:
    index = {n: i for i, n in enumerate(names)}
    planted = np.zeros(len(names))
    found = np.zeros((len(names), len(tallies)))
    alerts = np.zeros((len(names), len(tallies)))
    true = np.zeros((len(names), len(tallies)))
    for j, t in enumerate(tallies):
        for case in counted(t.cases, level):
            if j == 0:
                planted[index[case.cluster]] += 1
            found[index[case.cluster], j] += case.within[-1]
        for cluster, n in t.alerts.items():
            alerts[index[cluster], j] += n
        for cluster, n in t.true_alerts.items():
            true[index[cluster], j] += n
    return Columns(planted, found, alerts, true)


def _interval(values: Floats) -> Interval95 | None:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval95(float(low), float(high))


@dataclass(frozen=True)
class Intervals:
    recall: Interval95 | None  # the first detector's (the policy's)
    precision: Interval95 | None
    matched: list[Interval95 | None]  # per baseline group: its recall at the policy's precision
    gain: list[Interval95 | None]  # per baseline group: the policy's recall minus that


def intervals(c: Columns, groups: Sequence[Sequence[int]], w: Floats) -> Intervals:
    """Column 0 is the policy; each group lists the columns of one baseline's settings."""
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = (w @ c.found) / (w @ c.planted)[:, None]
        precision = (w @ c.true) / (w @ c.alerts)
    matched, gain = [], []
    for group in groups:
        cols = list(group)
        values = np.array(
            [
                recall_at(
                    [p for p in precision[b, cols] if np.isfinite(p)],
                    [r for p, r in zip(precision[b, cols], recall[b, cols], strict=True) if np.isfinite(p)],
                    float(precision[b, 0]),
                )
                if np.isfinite(precision[b, 0])
                else np.nan
                for b in range(w.shape[0])
            ]
        )
        matched.append(_interval(values))
        gain.append(_interval(recall[:, 0] - values))
    return Intervals(_interval(recall[:, 0]), _interval(precision[:, 0]), matched, gain)
