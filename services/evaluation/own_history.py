"""The own-history detector: a one-sided Poisson CUSUM per signal against each service's
own rate, shrunk toward its peers (empirical Bayes), with the alarm level h swept.

Pure (numpy). Day by day, for every location and signal (`signals.SIGNALS`):
- the *reference*: its counts from the start of the run up to day max(learning, d -
  guard, d x reference_share), so that a slow rise does not become its own baseline at
  once while the reference still grows; its exposure is days x capacity (days alone for
  per-location signals);
- the *expected rate*: Marshall's global empirical Bayes estimate. Peers are the
  locations of the same service type and size band (neighbouring bands merged up to
  `min_group` locations; small types pooled). The group's mean rate m and the spread
  between its services A (the rates' variance less the Poisson part m / mean exposure, at
  least 0) give each service m + A / (A + m / E) x (own rate - m): one with little
  history is judged against its peers, one with a long history against itself. A signal
  no peer has sent yet counts for nothing;
- the CUSUM for a rise to `ratio` times that rate: S = max(0, S + x ln(ratio) -
  (ratio - 1) x expected), x the day's count by event time (reporting delays ignored,
  which favours this detector).
A location is alarmed while any of its signals' S is at h or above (mode "any"), or the
CUSUM of all its signals' steps together is (mode "sum": a decline that raises several
signals a little). Nothing is alarmed in the learning period. An alarm is dated at the
last event of the day S crossed h, and ends at the end of the first day it is below h.

The defaults (guard 180 days, reference at least half the history, learning 60 days, no
allowance, no floor on the spread) gave the best frontier on the tuning seeds 1-3 over
730 days among the few tried (docs/evaluation.md, "The own-history detector").
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.evaluation.alarms import Interval
from services.evaluation.signals import SIGNALS, Observations, Scale

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

RATIOS = (1.5, 2.0, 3.0)
LEVELS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)
SIZE_BANDS = (25, 50, 100)  # capacity band edges: under 25, 25-49, 50-99, 100 and over


MODES = ("any", "sum")


@dataclass(frozen=True)
class Settings:
    ratios: tuple[float, ...] = RATIOS
    levels: tuple[float, ...] = LEVELS
    guard_days: int = 180
    learning_days: int = 60
    reference_share: float = 0.5
    allowance: float = 0.0
    min_spread: float = 0.0
    min_group: int = 8


@dataclass(frozen=True)
class OwnRule:
    ratio: float
    level: float
    mode: str = "any"  # any signal's CUSUM at h, or the CUSUM of all signals' sum

    @property
    def label(self) -> str:
        return f"{self.mode} x{self.ratio:g}, h {self.level:g}"


DEFAULT = Settings()


def grid(settings: Settings = DEFAULT) -> list[OwnRule]:
    return [OwnRule(k, h, m) for m in MODES for k in settings.ratios for h in settings.levels]


def poisson_cusum(counts: Sequence[float], expected: Sequence[float], ratio: float) -> list[float]:
    """The one-sided CUSUM path for a rise from `expected` to `ratio` x `expected` a step."""
    s, out = 0.0, []
    for x, lam in zip(counts, expected, strict=True):
        s = max(0.0, s + x * math.log(ratio) - (ratio - 1.0) * lam)
        out.append(s)
    return out


def peer_groups(service_types: Sequence[str], capacities: Sequence[int], min_group: int) -> Ints:
    """Each location's peer group index: its service type and size band, neighbouring bands
    of a type merged until each group has `min_group` locations; types with fewer than
    that in all are pooled together."""
    band = [sum(c >= edge for edge in SIZE_BANDS) for c in capacities]
    members: dict[str, dict[int, int]] = {}
    for t, b in zip(service_types, band, strict=True):
        members.setdefault(t, {}).setdefault(b, 0)
        members[t][b] += 1
    group_of: dict[tuple[str, int], str] = {}
    for t in sorted(members):
        bands = sorted(members[t])
        if sum(members[t].values()) < min_group:
            group_of.update({(t, b): "small types" for b in bands})
            continue
        runs: list[list[int]] = [[]]
        for b in bands:
            if sum(members[t][x] for x in runs[-1]) >= min_group:
                runs.append([])
            runs[-1].append(b)
        if len(runs) > 1 and sum(members[t][x] for x in runs[-1]) < min_group:
            tail = runs.pop()
            runs[-1] += tail
        group_of.update({(t, b): f"{t}/{run[0]}" for run in runs for b in run})
    index: dict[str, int] = {}
    keys = [group_of[(t, b)] for t, b in zip(service_types, band, strict=True)]
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def shrunk_rates(
    counts: Floats, exposure: Floats, groups: Ints, allowance: float = 0.0, min_spread: float = 0.0
) -> Floats:
    """Marshall's empirical Bayes rates (per unit of exposure), locations x signals; with
    `allowance` z, the estimate plus z of its posterior standard deviations; the spread
    between services (their rates' coefficient of variation) taken as at least
    `min_spread`."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    one_hot = np.zeros((n_groups, len(groups)))
    one_hot[groups, np.arange(len(groups))] = 1.0
    group_counts, group_exposure = one_hot @ counts, one_hot @ exposure
    # Half an event on the group keeps a never-seen signal's rate above zero.
    mean = (group_counts + 0.5) / group_exposure
    own = counts / exposure
    mine = mean[groups]
    spread = one_hot @ (exposure * (own - mine) ** 2) / group_exposure
    mean_exposure = group_exposure / one_hot.sum(axis=1)[:, None]
    between = np.maximum(spread - mean / mean_exposure, (min_spread * mean) ** 2)[groups]
    weight = between / (between + mine / exposure)
    result: Floats = mine + weight * (own - mine) + allowance * np.sqrt(weight * mine / exposure)
    return result


@dataclass
class Paths:
    """Per ratio, each location's largest CUSUM over its signals at the end of each day."""

    locations: list[str]
    ratios: tuple[float, ...]
    highest: Floats  # ratios x days x locations: the largest of the signals' CUSUMs
    summed: Floats  # ratios x days x locations: the CUSUM of the signals together
    last_event: Floats  # days x locations: time of the day's last counted event, or -1
    days: int
    learning_days: int = 0
    groups: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def daily_counts(obs: Observations) -> tuple[Floats, Floats]:
    """Counts per day, location and signal, and each day's last signal time per location."""
    counts = np.zeros((obs.days, len(obs.locations), len(SIGNALS)))
    last = np.full((obs.days, len(obs.locations)), -1.0)
    loc = np.array(obs.location, dtype=np.int64)
    time = np.array(obs.time, dtype=np.float64)
    sig = np.array(obs.signal, dtype=np.int64)
    keep = (sig >= 0) & (time >= 0) & (time < obs.days)
    day = time[keep].astype(np.int64)
    np.add.at(counts, (day, loc[keep], sig[keep]), 1.0)
    np.maximum.at(last, (day, loc[keep]), time[keep])
    return counts, last


def paths(obs: Observations, settings: Settings = DEFAULT) -> Paths:
    counts, last = daily_counts(obs)
    days, n_loc, n_sig = counts.shape
    capacity = np.array(obs.capacity, dtype=np.float64)
    scale = np.ones((n_loc, n_sig))
    for s, signal in enumerate(SIGNALS):
        if signal.scale is Scale.capacity:
            scale[:, s] = np.maximum(capacity, 1.0)
    groups = peer_groups(obs.service_type, obs.capacity, settings.min_group)
    one_hot = np.zeros((int(groups.max()) + 1 if n_loc else 0, n_loc))
    one_hot[groups, np.arange(n_loc)] = 1.0
    seen = np.zeros((n_loc, n_sig), dtype=bool)
    cumulative = np.concatenate([np.zeros((1, n_loc, n_sig)), np.cumsum(counts, axis=0)])
    ratios = np.array(settings.ratios)[:, None, None]
    log_ratio, drift = np.log(ratios), ratios - 1.0
    state = np.zeros((len(settings.ratios), n_loc, n_sig))
    together = np.zeros((len(settings.ratios), n_loc))
    highest = np.zeros((len(settings.ratios), days, n_loc))
    summed = np.zeros((len(settings.ratios), days, n_loc))
    reference, expected = -1, np.zeros((n_loc, n_sig))
    learn = min(settings.learning_days, days)
    for d in range(learn, days):
        ref = max(learn, d - settings.guard_days, int(d * settings.reference_share))
        if ref != reference:
            reference = ref
            exposure = scale * (ref / 365.0)
            rates = shrunk_rates(cumulative[ref], exposure, groups, settings.allowance, settings.min_spread)
            expected = rates * scale / 365.0
            # A signal no peer has sent yet is not one this kind of service sends (missed
            # visits at a care home): it counts for nothing until one does.
            seen = (one_hot @ cumulative[ref] > 0)[groups]
        step = np.where(seen[None], counts[d][None] * log_ratio - drift * expected[None], 0.0)
        state = np.maximum(0.0, state + step)
        together = np.maximum(0.0, together + step.sum(axis=2))
        highest[:, d, :] = state.max(axis=2)
        summed[:, d, :] = together
    return Paths(list(obs.locations), settings.ratios, highest, summed, last, days, learn, groups)


def rule_alarms(p: Paths, rule: OwnRule) -> dict[str, list[Interval]]:
    k = p.ratios.index(rule.ratio)
    on = (p.highest if rule.mode == "any" else p.summed)[k] >= rule.level  # days x locations
    out: dict[str, list[Interval]] = {}
    for i, location in enumerate(p.locations):
        column = on[:, i]
        if not column.any():
            continue
        edges = np.diff(np.concatenate([[0], column.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        intervals: list[Interval] = []
        for d, e in zip(starts.tolist(), ends.tolist(), strict=True):
            when = float(p.last_event[d, i])
            start = when if when >= d else float(d)
            end = float(min(e + 1, p.days))
            if intervals and start <= intervals[-1][1]:
                intervals[-1] = (intervals[-1][0], end)
            else:
                intervals.append((start, end))
        out[location] = intervals
    return out
