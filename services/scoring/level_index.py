"""Every local location's current level: the risk board and the per-level gauge."""

from dataclasses import dataclass, field

from schemas.risk import Level
from services.scoring.metrics import ScoringMetrics


@dataclass
class LevelIndex:
    metrics: ScoringMetrics
    levels: dict[str, Level] = field(default_factory=dict)
    loaded: bool = False

    def set(self, location_id: str, level: Level) -> None:
        old = self.levels.get(location_id)
        if old == level:
            return
        if old is not None:
            self.metrics.locations.labels(old.name).dec()
        self.levels[location_id] = level
        self.metrics.locations.labels(level.name).inc()
