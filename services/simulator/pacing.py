"""Streaming a run at a pace: an event goes out once wall time reaches its scaled time.

The demo (`make run`) streams a simulated year into the pipeline as it happens, only
faster: `speed` simulated seconds pass per wall second, counted from `wall_start`, when
the simulated period begins. Event time therefore runs ahead of wall time, which the
scorer allows (its clock is the latest event time) and ingest would not (it refuses
events more than 5 minutes in the future), so a paced run goes straight to Kafka.

Events come in arrival order, but each carries only its event time; arrival is never
earlier. The pace follows the latest event time seen so far, which moves forward only,
so a late report goes out at once behind newer ones, as it would arrive in reality.

A paced run may begin with history (`history_until`): what arrives before that instant
is the past an authority loads when it starts (sent at once, marked backfill, so that it
informs the scorer's view of each service without alerting anyone as if it were news);
the pace counts from there.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from services.simulator.population import Population
from services.simulator.sinks import EventSink


class HistorySink(EventSink, Protocol):
    """A sink that can mark an event as loaded history (a backfill)."""

    def send_history(self, event: dict[str, Any]) -> None: ...


def event_epoch(event: dict[str, Any]) -> float:
    """The event's `time` (`YYYY-MM-DDTHH:MM:SSZ`, as the simulator writes it) in seconds."""
    return datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class Pace:
    """When each simulated instant is due on the wall clock. Pure arithmetic."""

    def __init__(self, sim_start: float, wall_start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive (simulated seconds per wall second)")
        self.sim_start = sim_start
        self.wall_start = wall_start
        self.speed = speed

    def due(self, sim_time: float) -> float:
        """The wall time at which `sim_time` is reached."""
        return self.wall_start + max(0.0, sim_time - self.sim_start) / self.speed

    def simulated_now(self, wall_time: float) -> float:
        return self.sim_start + max(0.0, wall_time - self.wall_start) * self.speed


class PacedSink:
    """Holds each event back until its time is due, then passes it to `inner`.

    `flush` is called before any wait, so what is due is delivered rather than sitting
    in a producer's buffer while this one sleeps. With `history`, events that arrive
    before the pace's simulated start are history: sent at once with `inner.send_history`.
    """

    def __init__(
        self,
        inner: HistorySink,
        pace: Pace,
        flush: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        history: bool = False,
    ) -> None:
        self._inner = inner
        self._pace = pace
        self._flush = flush
        self._clock = clock
        self._sleep = sleep
        self._history = history
        self._latest = float("-inf") if history else pace.sim_start
        self.waited_s = 0.0
        self.history = 0

    def send(self, event: dict[str, Any]) -> None:
        self._latest = max(self._latest, event_epoch(event))
        # Arrival, not event time, decides: a late report of an old incident that
        # arrives once the stream is live is news.
        if self._history and self._latest < self._pace.sim_start:
            self._inner.send_history(event)
            self.history += 1
            return
        wait = self._pace.due(self._latest) - self._clock()
        if wait > 0:
            self._flush()
            self._sleep(wait)
            self.waited_s += wait
        self._inner.send(event)

    def directory(self, population: Population) -> None:
        self._inner.directory(population)

    def close(self) -> None:
        self._inner.close()
