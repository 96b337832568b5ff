"""A service's own rate of a kind of event, as an estimate, and the tails of counts
against it. Pure arithmetic, shared by the rises and the closed-culture rules.

The own rate (events a day) is a gamma distribution: a prior from the service's peers of
the same type, scaled to its size (as many events' worth as the spread between the peers
allows), updated with its own history (events in days). A count in a window is then
negative binomial: the rate is an estimate, so a short history gives wide tails and a long
one narrow tails, and a young service is judged mostly against its peers.
"""

import math
from dataclasses import dataclass

from services.scoring.policy_families import PeerPrior
from services.scoring.rules.peer_stats import PeerStats

DAYS_PER_YEAR = 365.0


def poisson_upper_tail(observed: int, expected: float) -> float:
    """P(X >= observed) for X ~ Poisson(expected)."""
    if observed <= 0:
        return 1.0
    if expected > 700:
        # exp(-expected) underflows (to zero beyond ~745): sum the terms in logs instead.
        log_expected = math.log(expected)
        below = math.fsum(math.exp(k * log_expected - expected - math.lgamma(k + 1)) for k in range(observed))
        return min(1.0, max(0.0, 1.0 - below))
    term = math.exp(-expected)
    below = term
    for k in range(1, observed):
        term *= expected / k
        below += term
    return max(0.0, 1.0 - below)


@dataclass(frozen=True)
class Rate:
    """Gamma(shape, per_day) over the own rate in events a day: mean shape / per_day."""

    shape: float
    per_day: float

    def expected(self, days: float) -> float:
        return self.shape / self.per_day * days

    def capped(self, max_shape: float | None) -> "Rate":
        """No more certain than `max_shape` events' worth (same mean)."""
        if max_shape is None or self.shape <= max_shape:
            return self
        return Rate(max_shape, self.per_day * max_shape / self.shape)


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified
    Lentz): converges in about the square root of max(a, b) terms. The two terms of each
    step are written out (a loop over a tuple of them cost a fifth more)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        numerator = m * (b - m) * x / ((a - 1.0 + m2) * (a + m2))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        numerator = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1.0) < 1e-13:
            break
    return h


def regularised_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, math.exp(log_front) * _continued_fraction(a, b, x) / a)
    return max(0.0, 1.0 - math.exp(log_front) * _continued_fraction(b, a, 1.0 - x) / b)


def cantelli_bound(observed: int, days: float, rate: Rate, upper: bool = True) -> float:
    """An upper bound on P(X >= observed) (or, not `upper`, P(X <= observed)) from the
    mean and variance alone (Cantelli's inequality), 1 when the count is not beyond the
    mean: cheap where only "is the tail below a threshold" matters and the count is far
    out."""
    return cantelli_of(observed, days, rate.shape, rate.per_day, upper)


def upper_tail(observed: int, days: float, rate: Rate) -> float:
    """P(X >= observed) for X the count in `days` given the estimated rate (a negative
    binomial of size `rate.shape`): I_{1-q}(observed, shape)."""
    return upper_tail_of(observed, days, rate.shape, rate.per_day)


def lower_tail(observed: int, days: float, rate: Rate) -> float:
    """P(X <= observed) for X the count in `days` given the estimated rate:
    I_q(shape, observed + 1)."""
    return lower_tail_of(observed, days, rate.shape, rate.per_day)


# The same three of a rate given as (shape, per_day): a rise's test makes no Rate.


def cantelli_of(observed: int, days: float, shape: float, per_day: float, upper: bool = True) -> float:
    mean = shape / per_day * days
    excess = observed - mean if upper else mean - observed
    if excess <= 0:
        return 1.0
    variance = mean * (1.0 + days / per_day)
    return variance / (variance + excess * excess)


def upper_tail_of(observed: int, days: float, shape: float, per_day: float) -> float:
    if observed <= 0:
        return 1.0
    # 1 - q, q the negative binomial's success probability for a count in `days`.
    return regularised_beta(observed, shape, 1.0 - per_day / (per_day + days))


def point_probability(observed: int, days: float, shape: float, per_day: float) -> float | None:
    """P(X = observed) for the count in `days`: part of either tail at `observed`, so a
    lower bound on it, from three log-gammas (the tail's continued fraction takes dozens
    of steps). None where the success probability is not strictly inside (0, 1)."""
    q = per_day / (per_day + days)
    if not 0.0 < q < 1.0 or observed < 0:
        return None
    return math.exp(
        math.lgamma(observed + shape)
        - math.lgamma(shape)
        - math.lgamma(observed + 1)
        + shape * math.log(q)
        + observed * math.log1p(-q)
    )


def lower_tail_of(observed: int, days: float, shape: float, per_day: float) -> float:
    if observed < 0:
        return 0.0
    return regularised_beta(shape, observed + 1, per_day / (per_day + days))


def scale(per_capacity: float | None, capacity: int | None) -> float | None:
    """How many of the prior's units this service is (None: no size to scale by)."""
    if per_capacity is None:
        return 1.0
    if capacity is None or capacity <= 0:
        return None
    return capacity / per_capacity


def peer_rate(count: int, observed_days: float, prior: PeerPrior, capacity: int | None) -> float | None:
    """What a location contributes to its peers' sums: its events a year per unit (the
    prior's per-capacity unit, or per location), over the window or the time observed if
    shorter; None until it has been observed for the prior's minimum history."""
    units = scale(prior.per_capacity, capacity)
    if units is None or observed_days < prior.min_history_days:
        return None
    return count / observed_span(prior, observed_days) * DAYS_PER_YEAR / units


def observed_span(prior: PeerPrior, observed_days: float) -> float:
    """The days a peer's rate is taken over: the window, or the whole weeks observed if
    fewer (whole weeks, so that a contribution moves with its events and once a week, not
    with every event of the location)."""
    return min(prior.window_days, max(7.0, observed_days // 7 * 7))


def prior_rate(stats: PeerStats, prior: PeerPrior, capacity: int | None) -> Rate | None:
    """The peers' rate for a service of this size, weighing as many events as the spread
    between the peers allows (at most the prior's `max_shape`); None without enough peers
    or a size."""
    return prior_without(stats, None, prior, capacity)


def prior_without(stats: PeerStats, own: float | None, prior: PeerPrior, capacity: int | None) -> Rate | None:
    """`prior_rate(stats.without(own), ...)`, with the sums' arithmetic of `without` and
    `mean_sd` written out (an assessment works out a few of these for every event)."""
    n, total, total_sq = stats.n, stats.total, stats.total_sq
    if own is not None:
        n, total, total_sq = n - 1, total - own, total_sq - own * own
    units = scale(prior.per_capacity, capacity)
    if units is None or n < 2 or n < prior.min_peers:
        return None
    mean = total / n
    sd = math.sqrt(max(total_sq / n - mean * mean, 0.0) * n / (n - 1))
    if mean <= 0:
        return None
    shape = prior.max_shape if sd <= 0 else min(prior.max_shape, (mean / sd) ** 2)
    per_day = mean * units / DAYS_PER_YEAR
    return Rate(shape, shape / per_day)


def estimate(count: int, days: float, prior: Rate | None, max_shape: float | None) -> Rate | None:
    """The own rate after `count` events in `days` of history; None with neither history
    nor prior."""
    found = estimated(count, days, prior, max_shape)
    return None if found is None else Rate(*found)


def estimated(count: int, days: float, prior: Rate | None, max_shape: float | None) -> tuple[float, float] | None:
    """`estimate` as (shape, per_day), capped as `Rate.capped` caps."""
    if prior is None:
        if days <= 0:
            return None
        # Half an event of pseudo-count: a quiet history is not proof of a zero rate.
        shape, per_day = count + 0.5, days
    else:
        shape, per_day = prior.shape + count, prior.per_day + max(days, 0.0)
    if max_shape is None or shape <= max_shape:
        return shape, per_day
    return max_shape, per_day * max_shape / shape
