"""What one simulation run is: sizes, dates, the seed and the world's variant. Built by the
CLI (or the evaluation), passed down."""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from services.simulator.variants import variant_named

Scale = Literal["region", "national"]

# Default sizes. National: ~25,000 CQC-registered adult social care locations and 153
# English authorities with adult social care duties (national-figures.md, "Population").
SCALE_SIZES: dict[Scale, tuple[int, int]] = {
    "region": (3, 150),
    "national": (153, 25_000),
}


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 1
    scale: Scale = "region"
    locations: int | None = None
    authorities: int | None = None
    days: int = 365
    start: date = date(2025, 1, 1)
    variant: str = "standard"  # a name in variants.VARIANTS

    @property
    def location_count(self) -> int:
        return self.locations if self.locations is not None else SCALE_SIZES[self.scale][1]

    @property
    def authority_count(self) -> int:
        return self.authorities if self.authorities is not None else SCALE_SIZES[self.scale][0]

    @property
    def start_epoch(self) -> float:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp()

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.location_count < 1 or self.authority_count < 1:
            raise ValueError("at least one location and one authority are needed")
        variant_named(self.variant)  # UnknownVariant (a ValueError) names the presets
