"""Sums over the locations of one service type, for the peer rules."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PeerStats:
    """Sums over the locations of one service type for one peer rule."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def without(self, rate: float | None) -> "PeerStats":
        if rate is None:
            return self
        return PeerStats(self.n - 1, self.total - rate, self.total_sq - rate * rate)

    def mean_sd(self) -> tuple[float, float] | None:
        if self.n < 2:
            return None
        mean = self.total / self.n
        variance = max(self.total_sq / self.n - mean * mean, 0.0) * self.n / (self.n - 1)
        return mean, math.sqrt(variance)


@dataclass(frozen=True)
class PeerUpdate:
    """A location's contribution to a peer rule's sums moved from `old` to `new`
    ((service type, rate), or None for no contribution)."""

    rule_id: str
    old: tuple[str, float] | None
    new: tuple[str, float] | None
