"""Every local location's current level and clock: the risk board, the per-level gauge,
and which elevated locations time has left behind."""

from dataclasses import dataclass, field
from datetime import datetime

from schemas.risk import Level
from services.scoring.metrics import ScoringMetrics


@dataclass
class LevelIndex:
    metrics: ScoringMetrics
    levels: dict[str, Level] = field(default_factory=dict)
    clocks: dict[str, datetime] = field(default_factory=dict)

    def set(self, location_id: str, level: Level, clock: datetime | None = None) -> None:
        if clock is not None:
            self.clocks[location_id] = clock
        old = self.levels.get(location_id)
        if old == level:
            return
        if old is not None:
            self.metrics.locations.labels(old.name).dec()
        self.levels[location_id] = level
        self.metrics.locations.labels(level.name).inc()

    def forget(self, location_ids: list[str]) -> None:
        """These locations' partition went to another worker."""
        for location_id in location_ids:
            self.clocks.pop(location_id, None)
            old = self.levels.pop(location_id, None)
            if old is not None:
                self.metrics.locations.labels(old.name).dec()
