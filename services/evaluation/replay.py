"""A pure replay of the scorer: events in arrival order through the risk model, as the
worker (`services/scoring/worker.py`) feeds it, with no Kafka and no wall clock.

What it reproduces of the worker, step for step:
- each location's events are assessed with the stream clock of its partition (murmur2 of
  the location ID, `services.scoring.routing.partition_of`), the latest event time or
  time signal seen on that partition before the event;
- peer sums are the worker's per-partition rows (`services.scoring.peers`), read for
  every partition, so a location's peers are every location of its type (held decoded,
  `PeerSums`, the same sums as the worker reads);
- each partition's tick schedule (`services.scoring.ticks.TickSchedule`): a location above
  none is re-evaluated at the time its level could next change (`model.next_due`), once
  the partition's clock (events and time signals) has reached it;
- time signals: the worker's leader sends the wall-clock time to every partition each
  minute. A replay has no wall clock; it emulates one with the stream's own time (the
  latest event time seen on any partition), sending a signal to every partition each
  time that time enters a new `signal_hours` slot. As in the worker, a signal advances the
  partition's clock, and locations due by then are ticked;
- the organisation roll-up (`services.scoring.organisation.roll_up`) of the location
  changes, in the order they were decided.

Cross-partition order is the one thing it cannot reproduce: the worker interleaves its
partitions as the broker delivers them, the replay takes arrival order. Per-location
results do not depend on it, except through peer sums (a known limit of the worker too).
"""

import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.directory import Location
from schemas.events import Event, EventParser
from schemas.risk import Level, LevelChange, LevelName
from services.evaluation.changes import Change, from_level_change
from services.scoring import model as scoring_model
from services.scoring.model import LocationState, Outcome, next_due
from services.scoring.organisation import OrganisationState, roll_up
from services.scoring.peers import PeerSums
from services.scoring.policy import Policy
from services.scoring.routing import PARTITIONS, partition_of
from services.scoring.rules.peer_stats import PeerStats
from services.scoring.ticks import TickSchedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ScoringModel:
    """The model's two entry points: the engine's by default; the equivalence tests and
    the benchmark pass the reference model (`services.scoring.oracle`) to compare."""

    # The replay keeps only the newest state of each location: the engine may change a
    # state's timeline in place rather than copy it.
    assess: Callable[..., Any] = field(default=functools.partial(scoring_model.assess, consume=True))
    tick: Callable[..., Any] = field(default=functools.partial(scoring_model.tick, consume=True))


@dataclass
class ReplayResult:
    changes: list[Change]
    statuses: Counter[str] = field(default_factory=Counter)
    events: int = 0
    ticks: int = 0
    signals: int = 0
    seconds: float = 0.0


class Replay:
    """Feed it events (in arrival order) and, optionally, let its emulated clock run on."""

    def __init__(
        self,
        locations: Mapping[str, Location],
        policy: Policy,
        *,
        ticks: bool = True,
        signal_hours: float | None = 1.0,
        partitions: int = PARTITIONS,
        own_partitions: frozenset[int] | None = None,
        model: ScoringModel | None = None,
    ) -> None:
        self.model = model or ScoringModel()
        self.locations = locations
        self.policy = policy
        self.ticks = ticks
        self.signal_slot = timedelta(hours=signal_hours) if signal_hours else None
        self.partitions = partitions
        self.own = own_partitions if own_partitions is not None else frozenset(range(partitions))
        self.parser = EventParser(future_tolerance=timedelta(days=3650))
        self.schedule = TickSchedule()
        self.states: dict[str, LocationState] = {}
        self.peer_sums = PeerSums(policy, partitions)
        # The worker's LevelIndex: every written location's level and clock, in the order
        # first written (the order its ticks go through them).
        self.levels: dict[str, Level] = {}
        self.clocks: dict[str, datetime] = {}
        self._partition: dict[str, int] = {}
        self._stream_time: datetime | None = None
        self._last_signal: datetime | None = None
        self.result = ReplayResult(changes=[])
        self.level_changes: list[LevelChange] = []
        # What the model was asked, in order: ("event", event, partition) and ("tick",
        # location, time, partition). `follow` asks another model the same (the
        # equivalence tests: tick times come from the engine's own states).
        self.calls: list[tuple[Any, ...]] | None = None

    def partition(self, location_id: str) -> int:
        cached = self._partition.get(location_id)
        if cached is None:
            cached = self._partition[location_id] = partition_of(location_id, self.partitions)
        return cached

    @property
    def peers(self) -> dict[str, bytes | None]:
        """The peer rows as the worker's global table would hold them."""
        return self.peer_sums.table()

    def _peer_view(self, location: Location | None) -> Mapping[tuple[str, str], PeerStats]:
        return self.peer_sums.view(location)

    def _write(self, location_id: str, outcome: Outcome, partition: int) -> None:
        if outcome.change is not None:
            self.level_changes.append(outcome.change)
            self.result.changes.append(from_level_change(outcome.change))
        self.states[location_id] = outcome.state
        self.peer_sums.apply(outcome.peer_updates, partition)
        if outcome.state.clock is not None:
            self.clocks[location_id] = outcome.state.clock
        self.levels[location_id] = outcome.state.current.level
        if self.ticks and isinstance(outcome.state, LocationState):
            due = next_due(outcome.state, self.locations.get(location_id), self.policy)
            self.schedule.plan(partition, location_id, due)

    # --- the worker's _score, _maybe_tick, _time_signal and _tick ------------------------

    def event(self, raw: Mapping[str, Any] | Event) -> None:
        if isinstance(raw, Mapping):
            partition = self.partition(raw["subject"])
            if partition not in self.own:
                # Another process's location; its time still moves the emulated clock.
                self._emulate_signals(datetime.fromisoformat(raw["time"]))
                return
            parsed = self.parser.parse_obj(raw)
        else:
            parsed = raw
            partition = self.partition(parsed.subject)
            if partition not in self.own:
                self._emulate_signals(parsed.time)
                return
        self._emulate_signals(parsed.time)
        self.score(parsed, partition)

    def score(self, parsed: Event, partition: int, *, backfill: bool = False) -> str:
        """One record of the event topic as the worker's `_score_event` takes it: the
        event assessed (`backfill`: the changes it causes are about the past), then its
        partition's clock moved on. The event's status (applied, late, duplicate, ...)."""
        self.result.events += 1
        status, clock = self.apply_event(parsed, partition, backfill=backfill)
        if status != "reused_id":  # dead-lettered by the worker, and no tick
            self._advance(partition, clock)
        return status

    def apply_event(self, parsed: Event, partition: int, *, backfill: bool = False) -> tuple[str, datetime | None]:
        """Assess one event and write what it changed; its status and the location's
        clock after it."""
        if self.calls is not None:
            self.calls.append(("event", parsed, partition))
        location = self.locations.get(parsed.subject)
        outcome = self.model.assess(
            self.states.get(parsed.subject),
            location,
            parsed,
            self.policy,
            self._peer_view(location),
            stream_clock=self.schedule.clock(partition),
            backfill=backfill,
        )
        status: str = outcome.status
        self.result.statuses[status] += 1
        if status in ("applied", "late"):
            self._write(parsed.subject, outcome, partition)
        clock: datetime | None = outcome.state.clock
        return status, clock

    def apply_tick(self, location_id: str, at: datetime, partition: int) -> None:
        if self.calls is not None:
            self.calls.append(("tick", location_id, at, partition))
        state = self.states.get(location_id)
        if state is None:
            return
        location = self.locations.get(location_id)
        outcome = self.model.tick(state, location, at, self.policy, self._peer_view(location))
        self.result.ticks += 1
        if outcome.status == "applied":
            self._write(location_id, outcome, partition)

    def follow(self, calls: Iterable[tuple[Any, ...]]) -> None:
        """Ask this replay's model exactly what another replay asked its model."""
        for call in calls:
            if call[0] == "event":
                self.apply_event(call[1], call[2])
            else:
                self.apply_tick(call[1], call[2], call[3])

    def signal(self, partition: int, at: datetime) -> None:
        """A time signal on one partition, handled as the worker's `_time_signal`."""
        self.result.signals += 1
        self._advance(partition, at)

    def run_clock_until(self, until: datetime) -> None:
        """Let the emulated wall clock run on after the last event (signals only)."""
        if self.signal_slot is None:
            return
        slot = self._slot(until)
        start = self._last_signal + self.signal_slot if self._last_signal is not None else slot
        at = start
        while at <= slot:
            self._signal_all(at)
            at += self.signal_slot

    def _slot(self, at: datetime) -> datetime:
        assert self.signal_slot is not None
        slots = (at - EPOCH) // self.signal_slot
        return EPOCH + slots * self.signal_slot

    def _emulate_signals(self, event_time: datetime) -> None:
        if self.signal_slot is None:
            return
        if self._stream_time is not None and event_time <= self._stream_time:
            return
        self._stream_time = event_time
        slot = self._slot(event_time)
        if self._last_signal is None or slot > self._last_signal:
            self._signal_all(slot)

    def _signal_all(self, at: datetime) -> None:
        self._last_signal = at
        for partition in sorted(self.own):
            self.signal(partition, at)

    def _advance(self, partition: int, clock: datetime | None) -> None:
        """The worker's `_advance`: the partition's clock moves on, and every location
        due by then is ticked at its due time, in time order (a tick may plan the
        location again within the same advance)."""
        self.schedule.advance(partition, clock)
        while (due := self.schedule.next_due(partition)) is not None:
            self.apply_tick(due[0], due[1], partition)


def organisation_changes(changes: Iterable[LevelChange], policy: Policy) -> list[Change]:
    """The worker's organisation roll-up over location changes, in the order given."""
    states: dict[str, OrganisationState] = {}
    out: list[Change] = []
    for change in changes:
        if change.scope != "location" or change.provider_id is None:
            continue
        state, org_change = roll_up(states.get(change.provider_id), change, policy)
        states[change.provider_id] = state
        if org_change is not None:
            out.append(from_level_change(org_change))
    return out


def roll_up_input(change: Change, provider_id: str) -> LevelChange:
    """The fields of a location change that the roll-up reads, rebuilt from a Change
    (changes from several replay processes are merged as Changes)."""
    return LevelChange(
        change_id=f"{change.subject}:{change.sequence}",
        sequence=change.sequence,
        scope="location",
        location_id=change.subject,
        provider_id=provider_id,
        old_level=LevelName(change.old.name),
        new_level=LevelName(change.new.name),
        direction="escalation" if change.escalation else "de-escalation",
        score=0.0,
        reasons=[],
        actions=[],
        meaning="",
        policy_version="",
        decided_at=change.time,
    )


def replay(
    locations: Mapping[str, Location],
    events: Iterable[Mapping[str, Any] | Event],
    policy: Policy,
    *,
    ticks: bool = True,
    signal_hours: float | None = 1.0,
    until: datetime | None = None,
    own_partitions: frozenset[int] | None = None,
    organisations: bool = True,
    model: ScoringModel | None = None,
) -> ReplayResult:
    """Every level change the scorer would make for these events, location changes in
    the order decided, then the organisations' (unless `organisations` is false)."""
    started = time.process_time()
    engine = Replay(
        locations,
        policy,
        ticks=ticks,
        signal_hours=signal_hours,
        own_partitions=own_partitions,
        model=model,
    )
    for event in events:
        engine.event(event)
    if until is not None:
        engine.run_clock_until(until)
    result = engine.result
    if organisations:
        result.changes.extend(organisation_changes(engine.level_changes, policy))
    result.seconds = time.process_time() - started
    return result
