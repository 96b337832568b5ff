"""The worker's level index (services/scoring/level_index.py): the per-level gauge follows
every location's level, and a partition handed to another worker leaves it whole."""

from datetime import UTC, datetime

from schemas.risk import Level
from services.scoring.level_index import LevelIndex
from services.scoring.metrics import ScoringMetrics


def _gauge(metrics: ScoringMetrics, level: Level) -> float:
    return metrics.locations.labels(level.name)._value.get()


def test_the_gauge_follows_levels_and_forgets_a_revoked_partitions_locations() -> None:
    metrics = ScoringMetrics()
    index = LevelIndex(metrics)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    index.set("a", Level.major, at)
    index.set("b", Level.major, at)
    index.set("c", Level.minor, at)
    index.set("b", Level.moderate, at)
    assert (_gauge(metrics, Level.major), _gauge(metrics, Level.moderate), _gauge(metrics, Level.minor)) == (1, 1, 1)
    index.forget(["a", "b", "z"])  # z was never here
    assert (_gauge(metrics, Level.major), _gauge(metrics, Level.moderate), _gauge(metrics, Level.minor)) == (0, 0, 1)
    assert index.levels == {"c": Level.minor} and list(index.clocks) == ["c"]
    index.set("a", Level.major, at)  # taken back later: counted once again
    assert _gauge(metrics, Level.major) == 1
