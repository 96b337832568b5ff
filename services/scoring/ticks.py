"""When a partition's event time has moved far enough to re-evaluate its elevated locations."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.risk import Level


@dataclass
class TickSchedule:
    """Per partition: the latest event time seen and the time of the last tick."""

    interval: timedelta
    clocks: dict[int, datetime] = field(default_factory=dict)
    last_tick: dict[int, datetime] = field(default_factory=dict)

    def clock(self, partition: int) -> datetime | None:
        return self.clocks.get(partition)

    def advance(self, partition: int, clock: datetime | None) -> datetime | None:
        """Move the partition's clock on; the time to tick at, if a tick is due."""
        if clock is None:
            return None
        previous = self.clocks.get(partition)
        if previous is None or clock > previous:
            self.clocks[partition] = clock
        now = self.clocks[partition]
        last = self.last_tick.get(partition)
        if last is None:
            self.last_tick[partition] = now
            return None
        if now - last < self.interval:
            return None
        self.last_tick[partition] = now
        return now


def elevated_due(
    levels: Mapping[str, Level], partition: int, partition_of: Callable[[str], int], due: Callable[[str], bool]
) -> list[str]:
    """The partition's locations above none that are due a tick, in the board's order."""
    return [k for k, level in levels.items() if level > Level.none and partition_of(k) == partition and due(k)]


def left_behind(clocks: Mapping[str, datetime], now: datetime, interval: timedelta) -> Callable[[str], bool]:
    """After a time signal, a location is due if its own clock is a tick interval or more
    behind the signal (no event for it since): ticked at the signal's time at once."""
    return lambda location_id: clocks.get(location_id, now) <= now - interval
