"""Rises: a recent window against the location's own longer history.

The own rate is the baseline's (Poisson: taken as known, with half an event of
pseudo-count), or an estimate as uncertain as the history is short (negative binomial),
shrunk toward the rate its peers of the same type have for its size when the rule has a
`prior`: a young service is judged mostly against its peers, an established one against
itself. A short and a long window where a burst matters are two rules.
"""

from bisect import bisect_right
from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Rise
from services.scoring.rules.base import CONTINUOUS_US, Hit, Step, later, next_edge
from services.scoring.rules.own_rate import (
    Rate,
    cantelli_of,
    estimated,
    lower_tail_of,
    point_probability,
    poisson_upper_tail,
    prior_without,
    upper_tail_of,
)
from services.scoring.rules.peer_stats import PeerStats
from services.scoring.timeline import US_PER_DAY, days_us

__all__ = ["Rises", "poisson_upper_tail"]

_WEEK_US = 7 * US_PER_DAY
_UNSET = "unset"  # not a memo value (those are rates or None)
_NO_PEERS = PeerStats()
# A lower bound on a tail decides "p is not below the threshold" only this far above it:
# the tail itself is worked out to about 1e-13, so the two never disagree.
_ROUNDING_MARGIN = 1.001


class Rises:
    def __init__(self, rises: list[Rise], bits: Mapping[str, int], prior_keys: Mapping[str, str] | None = None) -> None:
        """`prior_keys`: per rule with a prior, the key of the peer sums it reads."""
        self._rules = [(r, bits[r.id], days_us(r.recent_days), Level[r.level]) for r in rises]
        # What `evaluate` reads of every rule at every step, before most rules stop.
        self._screens = [
            (r, bit, span, level, r.direction == "up", r.min_history_days, r.min_recent_count)
            for r, bit, span, level in self._rules
        ]
        self._by_id = {r.id: (r, bit, span) for r, bit, span, _ in self._rules}
        self._baseline_spans = {r.id: days_us(r.baseline_days) for r in rises}
        # What `test` reads of a rule: (baseline days, recent days, baseline span, a
        # Poisson tail, direction up).
        self._tests = {
            r.id: (r.baseline_days, r.recent_days, self._baseline_spans[r.id], r.tail == "poisson", r.direction == "up")
            for r in rises
        }
        self._prior_keys = dict(prior_keys or {})
        # Keys of the assessment's memo (a string's hash is cached, a tuple's is not).
        self._memo_keys = {r.id: f"rise-prior|{r.id}" for r in rises}

    def due(self, step: Step) -> int | None:
        t, by_rule = step.t, step.timeline.by_rule
        edges: list[int | None] = []
        for rule, bit, recent_span, _ in self._rules:
            times = by_rule[bit]
            if not times:
                continue
            baseline_days = min(rule.baseline_days, step.observed_days - rule.recent_days)
            if baseline_days < rule.baseline_days or (rule.prior is not None and rule.id in step.previous.active):
                # The baseline grows with the location's history (or the peers' rates
                # move with their own events): the test moves every day.
                edges.append(t + CONTINUOUS_US)
            edges.append(next_edge(times, t, recent_span))
            if baseline_days > 0:
                # The baseline ends where the recent window starts: its oldest event leaves
                # it a recent window later than it would leave a window ending now. A
                # baseline still growing starts at the first observation and loses no event
                # until it is full: the edge is the full baseline's (the part grown so far
                # would give t plus the gap between the first observation and the next
                # event, at every tick: a busy young service was ticked every few minutes).
                baseline_span = self._baseline_spans[rule.id]
                edges.append(later(next_edge(times, t - recent_span, baseline_span), recent_span))
        return min((e for e in edges if e is not None), default=None)

    def _prior(self, step: Step, rule: Rise) -> Rate | None:
        """The peers' rate for this location's size: the same for every step of one
        assessment, so worked out once for it."""
        if rule.prior is None or step.location is None:
            return None
        key = self._memo_keys[rule.id]
        memo = step.memo
        found: Rate | str | None = memo.get(key, _UNSET)
        if found is not _UNSET:
            return found  # type: ignore[return-value]
        kind = step.location.service_type.value
        series = self._prior_keys.get(rule.id, rule.id)
        own = step.own_peer_rates.get(series)
        stats = step.peers.get((series, kind), _NO_PEERS)
        prior = memo[key] = prior_without(stats, own[1] if own and own[0] == kind else None, rule.prior, step.capacity)
        return prior

    def test(
        self,
        step: Step,
        rule: Rise,
        bit: int,
        recent_span: int,
        at: int,
        can_enter_only: bool = False,
        below: float | None = None,
        recent: int | None = None,
        above: float | None = None,
    ) -> tuple[int, float, float] | None:
        """(recent count, expected count, p) at time `at` (a step's time or an earlier
        sample; its history as observed then), or None when the rule cannot judge. With
        `can_enter_only`, None also when the count is not `min_ratio` times beyond the
        expected one (it could not enter: the tail is not worked out). With `below`, the
        caller asks only whether p is below it: far out in the tail, p is then an upper
        bound on it (below `below`), not worked out exactly. `recent`: the recent count
        at `at`, if the caller has it. With `above`, the caller asks only whether p is
        below it: where the probability of the count itself reaches it (with a margin far
        beyond the arithmetic's rounding), p is then that lower bound on it, not worked
        out exactly."""
        full_days, recent_days, full_span, by_poisson, up = self._tests[rule.id]
        t = step.t
        observed = step.observed_days - (t - at) / US_PER_DAY
        if observed < rule.min_history_days:
            return None
        baseline_days = min(full_days, observed - recent_days)
        # The full baseline's span is worked out once (days_us is most of a test's arithmetic).
        baseline_span = full_span if baseline_days == full_days else days_us(max(baseline_days, 0.0))
        recent_start = at - recent_span
        times = step.timeline.by_rule[bit]
        if recent is None:
            recent = bisect_right(times, at) - bisect_right(times, recent_start)  # Timeline.tagged
        if by_poisson and rule.prior is None:
            if baseline_days <= 0:
                return None
            baseline = bisect_right(times, recent_start) - bisect_right(times, recent_start - baseline_span)
            # Half an event of pseudo-count: a quiet history is not proof of a zero rate.
            expected = (baseline + 0.5) * recent_days / baseline_days
            if can_enter_only and recent < rule.min_ratio * expected:
                return None
            return recent, expected, poisson_upper_tail(recent, expected)
        # At an earlier sample the evidence before the retention (less a week) is gone.
        start = max(recent_start - baseline_span, t - step.retention_us + _WEEK_US)
        baseline_days = max(0.0, (recent_start - start) / US_PER_DAY)
        baseline = bisect_right(times, recent_start) - bisect_right(times, start) if baseline_days else 0
        rate = estimated(baseline, baseline_days, self._prior(step, rule), rule.max_shape)
        if rate is None:
            return None
        shape, per_day = rate
        expected = shape / per_day * recent_days  # Rate.expected
        if can_enter_only and (recent < rule.min_ratio * expected if up else recent * rule.min_ratio > expected):
            return None
        if by_poisson:
            return recent, expected, poisson_upper_tail(recent, expected)
        if below is not None:
            bound = cantelli_of(recent, recent_days, shape, per_day, upper=up)
            if bound < below:
                return recent, expected, bound
        if above is not None:
            floor = point_probability(recent, recent_days, shape, per_day)
            if floor is not None and floor >= above * _ROUNDING_MARGIN:
                return recent, expected, floor
        if up:
            return recent, expected, upper_tail_of(recent, recent_days, shape, per_day)
        return recent, expected, lower_tail_of(recent, recent_days, shape, per_day)

    def held(self, step: Step, rule_id: str, at: int) -> float | None:
        """The recent count at `at` if the rule held then (at its leaving threshold, as an
        active rule stays)."""
        rule, bit, span = self._by_id[rule_id]
        found = self.test(step, rule, bit, span, at, below=rule.exit_p)
        if found is None or (found[0] == 0 and rule.direction == "up"):
            return None
        recent, _, p = found
        return float(recent) if p < rule.exit_p else None

    def evaluate(self, step: Step) -> None:
        t, by_rule, observed, active = step.t, step.timeline.by_rule, step.observed_days, step.previous.active
        for rule, bit, recent_span, level, up, min_history, min_recent in self._screens:
            times = by_rule[bit]
            if (up and not times) or observed < min_history:
                continue
            recent = bisect_right(times, t) - bisect_right(times, t - recent_span)  # Timeline.tagged
            was = rule.id in active
            # No recent event is never a rise (p = 1), and below the minimum only an
            # active rise can stay: skip the test.
            if up and (recent == 0 or (recent < min_recent and not was)):
                continue
            # An active rule stays while p < exit_p: unless explained, how far below does
            # not matter.
            below = rule.exit_p if was and not step.explain else None
            # A rule not active fires only if p < enter_p: how far above does not matter
            # (its p is read only when it fires, explained or not).
            above = None if was else rule.enter_p
            found = self.test(
                step, rule, bit, recent_span, t, can_enter_only=not was, below=below, recent=recent, above=above
            )
            if found is None:
                continue
            _, expected, p = found
            if up:
                entering = recent >= rule.min_recent_count and recent >= rule.min_ratio * expected
            else:
                entering = expected >= rule.min_recent_count and recent * rule.min_ratio <= expected
            if (entering and p < rule.enter_p) or (was and p < rule.exit_p):
                step.active.add(rule.id)
                step.fire(level)
                if step.explain:
                    description = (
                        f"{rule.description} ({recent} in {rule.recent_days:g} days against "
                        f"{expected:.1f} expected; p={p:.4f})"
                    )
                    step.hits.append(Hit(rule.id, "rise", level, description, p, "tag", bit, t - recent_span, t))
