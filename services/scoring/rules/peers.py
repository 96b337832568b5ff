"""Peer rules: a location's events per capacity against locations of the same service
type: unusually high, or (after a year) unusually low, a sign of under-reporting."""

from collections.abc import Mapping

from schemas.risk import Level
from services.scoring.policy import Peer
from services.scoring.rules.base import CONTINUOUS_US, Hit, Step, next_edge
from services.scoring.rules.peer_stats import PeerStats
from services.scoring.timeline import Timeline, days_us


class Peers:
    def __init__(self, peers: list[Peer], bits: Mapping[str, int]) -> None:
        self._rules = [(r, bits[r.id], days_us(r.window_days), Level[r.level]) for r in peers]

    def rates(self, timeline: Timeline, capacity: int, t: int) -> list[tuple[str, float]]:
        """Each peer rule's rate for this location at t: (rule id, events per capacity)."""
        return [
            (rule.id, timeline.tagged(bit, t - window, t) / capacity * rule.per_capacity)
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

    def evaluate(self, step: Step) -> None:
        location = step.location
        if location is None:
            return
        t, timeline, kind = step.t, step.timeline, location.service_type.value
        for rule, bit, window, level in self._rules:
            count = timeline.tagged(bit, t - window, t)
            can_be_low = rule.low_z is not None and step.observed_days >= rule.min_history_days
            # With no event, a rate of 0 is never unusually high (high_z > 0).
            if count == 0 and not can_be_low:
                continue
            summary = self._summary(step, rule.id, kind)
            if summary is None or summary[0] < rule.min_peers or summary[2] <= 0:
                continue
            n, mean, sd = summary
            rate = count / location.capacity * rule.per_capacity
            z = (rate - mean) / sd
            was = rule.id in step.previous.active
            high = count >= rule.min_count and (z >= rule.high_z or (was and z >= rule.high_z - rule.exit_margin))
            low = (
                can_be_low
                and rule.low_z is not None
                and (z <= rule.low_z or (was and z <= rule.low_z + rule.exit_margin))
            )
            if high or low:
                step.active.add(rule.id)
                step.fire(level)
                if step.explain:
                    side = "unusually high" if high else "unusually low (possible under-reporting)"
                    description = (
                        f"{rule.description}: {side}, {rate:.2f} per {rule.per_capacity:g} "
                        f"against a mean of {mean:.2f} over {n} peers (z={z:.2f})"
                    )
                    step.hits.append(Hit(rule.id, "peer", level, description, z, "tag", bit, t - window, t))
