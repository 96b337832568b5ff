"""Closed culture: staff and police speak up more than the service's own history predicts
while its own reports (notifications, safeguarding referrals) fall below what its history
and its size predict. Either alone is common; together they are how a closed culture
shows from outside (the source's "service resisting the involvement of external people",
and the regulator's "failure to send statutory notifications").

Both are judged as rises are (`own_rate`): the window against the time before it, the own
rate shrunk toward the peers' for the service's size, negative binomial tails.
"""

from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy_families import ClosedCulture, Series
from services.scoring.rules.base import CONTINUOUS_US, Hit, Step, later, next_edge
from services.scoring.rules.own_rate import Rate, estimate, lower_tail, prior_without, upper_tail
from services.scoring.rules.peer_stats import PeerStats
from services.scoring.timeline import days_us


def series_tags(rule: ClosedCulture) -> tuple[str, str]:
    """The tags (and peer-sum keys) of its two series: not rule ids (ids have no colon)."""
    return f"{rule.id}:voices", f"{rule.id}:reports"


class ClosedCultures:
    def __init__(
        self, rules: list[ClosedCulture], bits: Mapping[str, int], prior_keys: Mapping[str, str] | None = None
    ) -> None:
        """`prior_keys`: per series with a prior, the key of the peer sums it reads."""
        self._prior_keys = dict(prior_keys or {})
        self._rules = []
        for rule in rules:
            voices, reports = series_tags(rule)
            self._rules.append((rule, bits[voices], bits[reports], days_us(rule.window_days), Level[rule.level]))

    def _prior(self, step: Step, key: str, series: Series) -> Rate | None:
        if series.prior is None or step.location is None:
            return None
        memo_key = ("closed-prior", key)
        if memo_key not in step.memo:
            kind = step.location.service_type.value
            sums = self._prior_keys.get(key, key)
            own = step.own_peer_rates.get(sums)
            stats = step.peers.get((sums, kind), PeerStats())
            own_rate = own[1] if own and own[0] == kind else None
            step.memo[memo_key] = prior_without(stats, own_rate, series.prior, step.capacity)
        found: Rate | None = step.memo[memo_key]
        return found

    def _baseline_days(self, step: Step, rule: ClosedCulture) -> float:
        return max(0.0, min(rule.baseline_days, step.observed_days - rule.window_days))

    def due(self, step: Step) -> int | None:
        t, by_rule = step.t, step.timeline.by_rule
        edges: list[int | None] = []
        for rule, voices, reports, window, _ in self._rules:
            baseline_days = self._baseline_days(step, rule)
            if rule.id in step.previous.active and (
                baseline_days < rule.baseline_days or rule.voices.prior or rule.reports.prior
            ):
                edges.append(t + CONTINUOUS_US)
            for bit in (voices, reports):
                edges.append(next_edge(by_rule[bit], t, window))
                if baseline_days > 0:
                    # A growing baseline loses no event until it is full (as in rises).
                    edges.append(later(next_edge(by_rule[bit], t - window, days_us(rule.baseline_days)), window))
        return min((e for e in edges if e is not None), default=None)

    def evaluate(self, step: Step) -> None:
        t, timeline = step.t, step.timeline
        for rule, voices_bit, reports_bit, window, level in self._rules:
            if step.observed_days < rule.min_history_days:
                continue
            was = rule.id in step.previous.active
            voices = timeline.tagged(voices_bit, t - window, t)
            if voices == 0 or (voices < rule.min_voices and not was):
                continue
            baseline_days = self._baseline_days(step, rule)
            start = t - window - days_us(baseline_days)
            voices_key, reports_key = series_tags(rule)
            voices_rate = estimate(
                timeline.tagged(voices_bit, start, t - window) if baseline_days else 0,
                baseline_days,
                self._prior(step, voices_key, rule.voices),
                rule.max_shape,
            )
            reports_rate = estimate(
                timeline.tagged(reports_bit, start, t - window) if baseline_days else 0,
                baseline_days,
                self._prior(step, reports_key, rule.reports),
                rule.max_shape,
            )
            if voices_rate is None or reports_rate is None:
                continue
            reports = timeline.tagged(reports_bit, t - window, t)
            p_voices = upper_tail(voices, rule.window_days, voices_rate)
            p_reports = lower_tail(reports, rule.window_days, reports_rate)
            expected_reports = reports_rate.expected(rule.window_days)
            entering = (
                voices >= rule.min_voices
                and p_voices < rule.voices_p
                and p_reports < rule.reports_p
                and reports <= rule.max_reports_ratio * expected_reports
            )
            if not (entering or (was and p_voices < rule.exit_p and p_reports < rule.exit_p)):
                continue
            step.active.add(rule.id)
            step.fire(level)
            if step.explain:
                description = (
                    f"{rule.description}: {voices} in {rule.window_days:g} days from staff and police against "
                    f"{voices_rate.expected(rule.window_days):.1f} expected (p={p_voices:.4f}), while its own "
                    f"reports were {reports} against {expected_reports:.1f} expected for its history and size "
                    f"(p={p_reports:.4f})"
                )
                mask = (1 << voices_bit) | (1 << reports_bit)
                step.hits.append(
                    Hit(rule.id, "closed_culture", level, description, p_voices, "tags", mask, t - window, t)
                )
