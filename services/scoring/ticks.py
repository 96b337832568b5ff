"""When a partition's event time has moved far enough to re-evaluate its elevated locations."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta


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
