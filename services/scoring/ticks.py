"""When to re-evaluate a location with no new event: at the time its level could next
change (`model.next_due`: a window passing its oldest event, a hold running out, a score
decaying through a threshold), once its partition's clock has reached that time.

Only locations above none are planned (nothing but an event raises a level from none),
and each is ticked at its own due time, so a level falls when the policy says it does,
not up to a tick interval later, and a quiet raised location costs nothing between its
due times.
"""

import heapq
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class TickSchedule:
    """Per partition: its clock (the latest event or time signal seen) and a queue of its
    locations' due times. A location has one due time; a newer plan replaces the older."""

    clocks: dict[int, datetime] = field(default_factory=dict)
    _queues: dict[int, list[tuple[datetime, str]]] = field(default_factory=dict)
    _due: dict[str, datetime] = field(default_factory=dict)

    def clock(self, partition: int) -> datetime | None:
        return self.clocks.get(partition)

    def advance(self, partition: int, clock: datetime | None) -> None:
        if clock is None:
            return
        previous = self.clocks.get(partition)
        if previous is None or clock > previous:
            self.clocks[partition] = clock

    def plan(self, partition: int, location_id: str, due: datetime | None) -> None:
        if due is None:
            self._due.pop(location_id, None)
            return
        if self._due.get(location_id) == due:
            return
        self._due[location_id] = due
        heapq.heappush(self._queues.setdefault(partition, []), (due, location_id))

    def next_due(self, partition: int) -> tuple[str, datetime] | None:
        """The location due soonest, if its time has come on the partition's clock (it is
        then no longer planned: ticking it plans it again)."""
        now = self.clocks.get(partition)
        queue = self._queues.get(partition)
        while now is not None and queue and queue[0][0] <= now:
            due, location_id = heapq.heappop(queue)
            if self._due.get(location_id) == due:  # else replaced by a later plan
                del self._due[location_id]
                return location_id, due
        return None

    def planned(self, location_id: str) -> datetime | None:
        return self._due.get(location_id)

    def forget(self, partition: int) -> None:
        """The partition went to another worker: its plans and clock go with it (read
        again from the partition-clocks table if it comes back)."""
        self.clocks.pop(partition, None)
        for _, location_id in self._queues.pop(partition, []):
            self._due.pop(location_id, None)
