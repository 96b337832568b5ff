"""Peer rules: a location's events per capacity against locations of the same service
type: unusually high, or (after a year) unusually low, a sign of under-reporting.

With `min_peer_history_days`, a location is judged, and counts among its peers, only once
it has been observed that long: a first concern is not "unusually high" against peers
that have no history yet."""

from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Peer
from services.scoring.rules.base import CONTINUOUS_US, Hit, Step, next_edge
from services.scoring.rules.peer_stats import PeerStats
from services.scoring.timeline import US_PER_DAY, Timeline, days_us


class Peers:
    def __init__(self, peers: list[Peer], bits: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.window_days), Level[r.level]) for r in peers]
        self._by_id = {r.id: (r, bit, window) for r, bit, window, _ in self._rules}

    def rates(self, timeline: Timeline, capacity: int, t: int, observed_days: float) -> list[tuple[str, float | None]]:
        """Each peer rule's rate for this location at t: (rule id, events per capacity),
        None while it has been observed for less than the rule's `min_peer_history_days`."""
        return [
            (
                rule.id,
                None
                if rule.min_peer_history_days is not None and observed_days < rule.min_peer_history_days
                else timeline.tagged(bit, t - window, t) / capacity * rule.per_capacity,
            )
            for rule, bit, window, _ in self._rules
        ]

    def due(self, step: Step) -> int | None:
        edges = [next_edge(step.timeline.by_rule[bit], step.t, window) for _, bit, window, _ in self._rules]
        if any(rule.id in step.previous.active for rule, _, _, _ in self._rules):
            # The peers' rates move with their own events, not this location's.
            edges.append(step.t + CONTINUOUS_US)
        return min((e for e in edges if e is not None), default=None)

    def _summary(self, step: Step, rule_id: str, kind: str) -> tuple[int, float, float] | None:
        """The other locations' (n, mean, sd): the same for every step of one assessment
        (one peer view, one own contribution), so worked out once for it."""
        key = ("peer", rule_id, kind)
        if key in step.memo:
            found: tuple[int, float, float] | None = step.memo[key]
            return found
        own = step.own_peer_rates.get(rule_id)
        others = step.peers.get((rule_id, kind), PeerStats()).without(own[1] if own and own[0] == kind else None)
        mean_sd = others.mean_sd()
        summary = None if mean_sd is None else (others.n, mean_sd[0], mean_sd[1])
        step.memo[key] = summary
        return summary

    def _judged(self, step: Step, rule: Peer, bit: int, window: int, at: int) -> tuple[int, float, float] | None:
        """(count, rate, z) at time `at` against the peers as they are now; None when the
        rule cannot judge (no directory record, too few peers, too little history)."""
        location = step.location
        if location is None:
            return None
        observed = step.observed_days - (step.t - at) / US_PER_DAY
        if rule.min_peer_history_days is not None and observed < rule.min_peer_history_days:
            return None
        summary = self._summary(step, rule.id, location.service_type.value)
        if summary is None or summary[0] < rule.min_peers or summary[2] <= 0:
            return None
        _, mean, sd = summary
        count = step.timeline.tagged(bit, at - window, at)
        rate = count / location.capacity * rule.per_capacity
        return count, rate, (rate - mean) / sd

    def held(self, step: Step, rule_id: str, at: int) -> float | None:
        """The count at `at` if the rule held then on the high side (at its leaving
        threshold, as an active rule stays)."""
        rule, bit, window = self._by_id[rule_id]
        found = self._judged(step, rule, bit, window, at)
        if found is None:
            return None
        count, _, z = found
        if rule.high_z is None:
            return None
        return float(count) if count >= rule.min_count and z >= rule.high_z - rule.exit_margin else None

    def evaluate(self, step: Step) -> None:
        location = step.location
        if location is None:
            return
        t, timeline = step.t, step.timeline
        for rule, bit, window, level in self._rules:
            can_be_low = rule.low_z is not None and step.observed_days >= rule.min_history_days
            # With no event, a rate of 0 is never unusually high (high_z > 0); a rule that
            # judges only the low side and cannot yet is skipped as well.
            if not can_be_low and (rule.high_z is None or not timeline.tagged(bit, t - window, t)):
                continue
            found = self._judged(step, rule, bit, window, t)
            if found is None:
                continue
            count, rate, z = found
            was = rule.id in step.previous.active
            high = (
                rule.high_z is not None
                and count >= rule.min_count
                and (z >= rule.high_z or (was and z >= rule.high_z - rule.exit_margin))
            )
            low = (
                can_be_low
                and rule.low_z is not None
                and (z <= rule.low_z or (was and z <= rule.low_z + rule.exit_margin))
            )
            if high or low:
                step.active.add(rule.id)
                step.fire(level)
                if step.explain:
                    n, mean, _ = self._summary(step, rule.id, location.service_type.value) or (0, 0.0, 0.0)
                    side = "unusually high" if high else "unusually low (possible under-reporting)"
                    description = (
                        f"{rule.description}: {side}, {rate:.2f} per {rule.per_capacity:g} "
                        f"against a mean of {mean:.2f} over {n} peers (z={z:.2f})"
                    )
                    step.hits.append(Hit(rule.id, "peer", level, description, z, "tag", bit, t - window, t))
