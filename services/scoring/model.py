"""The risk model: a pure function from (state, directory record, event) to new state
and, when the level moves, a level change. No Faust, no Kafka: the worker only feeds it.

Time is event time. The state keeps the evidence of the retention horizon, indexed for the
rule families (`timeline.py`, `rules/`), and two histories: `committed`, evaluated up to
the watermark (latest event time minus the out-of-order tolerance), and `current`, which
replays the events after the watermark in time order on top of it. So within the
tolerance the current level depends on which events have arrived, never on the order
they arrived in. Older ("late") events are still counted from then on, but the committed
history is not rewritten for them.

States are values: `assess` and `tick` return a new state and never change the one given.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from schemas.directory import Location
from schemas.events import Event
from schemas.risk import Level, LevelChange, LevelName, RuleFiring
from services.scoring.engine import Compiled, compiled, due, reasons, replay
from services.scoring.evidence import content_digest
from services.scoring.policy import Policy
from services.scoring.rules.base import History, PeerView
from services.scoring.rules.peer_stats import PeerUpdate
from services.scoring.timeline import US_PER_DAY, Item, Timeline, from_us, to_us


@dataclass
class LocationState:
    location_id: str
    policy_version: str
    timeline: Timeline
    clock_us: int | None = None
    watermark_us: int | None = None
    first_seen_us: int | None = None
    committed: History = field(default_factory=History)
    current: History = field(default_factory=History)
    change_seq: int = 0
    # Times of ticks not yet behind the watermark: the committed history must step at them
    # too, or a fall a tick found (and published) is forgotten by the next event.
    tick_times: list[int] = field(default_factory=list)
    # What this location last contributed to each peer rule's sums: (service type, rate).
    peer_rates: dict[str, tuple[str, float]] = field(default_factory=dict)
    # The last event applied came from a backfill: changes that time passing makes are
    # then decisions about the past too. A live event clears it.
    backfill: bool = False

    @property
    def clock(self) -> datetime | None:
        return None if self.clock_us is None else from_us(self.clock_us)

    @property
    def watermark(self) -> datetime | None:
        return None if self.watermark_us is None else from_us(self.watermark_us)

    @property
    def first_seen(self) -> datetime | None:
        return None if self.first_seen_us is None else from_us(self.first_seen_us)

    @property
    def level(self) -> Level:
        return self.current.level

    @property
    def since(self) -> datetime | None:
        return None if self.current.since is None else from_us(self.current.since)

    @property
    def evaluated_at(self) -> datetime | None:
        return None if self.current.at is None else from_us(self.current.at)

    @property
    def evidence(self) -> list[Item]:
        return self.timeline.items

    def reasons(self) -> list[RuleFiring]:
        """Why the location is at its current level, with the evidence of each rule."""
        return reasons(self.current.hits, self.timeline)


def _evolve(state: LocationState, **changes: object) -> LocationState:
    """A copy of the state with these fields changed (dataclasses.replace re-runs the
    constructor and copy.copy goes through __reduce_ex__, each several times the cost;
    the model makes a few per event)."""
    new = object.__new__(type(state))
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new


# reused_id: an event id (of its source) already kept, with other content.
Status = Literal["applied", "duplicate", "late", "expired", "reused_id"]


@dataclass
class Outcome:
    state: LocationState
    status: Status
    change: LevelChange | None = None
    peer_updates: list[PeerUpdate] = field(default_factory=list)


def new_state(location_id: str, policy: Policy) -> LocationState:
    return LocationState(location_id=location_id, policy_version=policy.version, timeline=compiled(policy).timeline())


def rebuild(c: Compiled, items: list[Item]) -> Timeline:
    """A timeline of these items classified by the compiled policy."""
    timeline = c.timeline()
    for item in items:
        tags, weight, concern = c.classify(item.type, item.facts)
        if (tags, weight, concern) != (item.tags, item.weight, item.concern):
            item = Item(item.time, item.source, item.id, item.type, item.facts, item.digest, tags, weight, concern)
        timeline.add(item)
    return timeline


def _ensure_policy(state: LocationState, c: Compiled) -> LocationState:
    if state.policy_version == c.policy.version:
        return state
    # A new policy version re-reads the kept evidence with the new rules.
    return _evolve(state, policy_version=c.policy.version, timeline=rebuild(c, state.timeline.items))


def _advance(
    state: LocationState, clock: int, c: Compiled, location: Location | None, peers: PeerView
) -> tuple[LocationState, History]:
    watermark = clock - c.tolerance_us
    committed = state.committed
    memo: dict[object, Any] = {}  # one peer view and own rates for every step of this call
    if state.watermark_us is None or watermark > state.watermark_us:
        committed = replay(
            c,
            committed,
            state.watermark_us,
            watermark,
            state.timeline,
            location,
            state.first_seen_us,
            peers,
            state.peer_rates,
            final=False,
            tick_times=state.tick_times,
            memo=memo,
        )
    else:
        watermark = state.watermark_us
    current = replay(
        c,
        committed,
        watermark,
        clock,
        state.timeline,
        location,
        state.first_seen_us,
        peers,
        state.peer_rates,
        final=True,
        tick_times=state.tick_times,
        memo=memo,
    )
    pending = [t for t in state.tick_times if t > watermark]
    return _evolve(state, clock_us=clock, watermark_us=watermark, committed=committed, tick_times=pending), current


def _finish(
    before: LocationState,
    state: LocationState,
    current: History,
    c: Compiled,
    location: Location | None,
    status: Status,
    backfill: bool,
) -> Outcome:
    peer_updates: list[PeerUpdate] = []
    peer_rates = state.peer_rates
    if location is not None and state.clock_us is not None and (c.policy.peers or c.prior_series):
        kind = location.service_type.value
        first = state.first_seen_us
        observed = (state.clock_us - first) / US_PER_DAY if first is not None else 0.0
        for rule_id, rate in c.peer_rates(state.timeline, location.capacity, state.clock_us, observed):
            old = peer_rates.get(rule_id)
            if rate is None:
                if old is None:
                    continue
                new = None
            else:
                rounded = round(rate, 6)
                if old is not None and old[1] == rounded and old[0] == kind:
                    continue  # unchanged (most series at most events): no tuple made
                new = (kind, rounded)
            if old != new:
                if peer_rates is state.peer_rates:
                    peer_rates = dict(peer_rates)
                peer_updates.append(PeerUpdate(rule_id, old, new))
                if new is None:
                    del peer_rates[rule_id]
                else:
                    peer_rates[rule_id] = new
    change = None
    seq = state.change_seq
    if current.level != before.current.level:
        seq += 1
        why = reasons(current.hits, state.timeline)
        change = level_change(state.location_id, location, before.current.level, current, why, c.policy, seq, backfill)
    state = _evolve(state, current=current, change_seq=seq, peer_rates=peer_rates)
    return Outcome(state=state, status=status, change=change, peer_updates=peer_updates)


def assess(
    state: LocationState | None,
    location: Location | None,
    event: Event,
    policy: Policy,
    peers: PeerView | None = None,
    *,
    stream_clock: datetime | None = None,
    backfill: bool = False,
    consume: bool = False,
) -> Outcome:
    """Apply one event to a location's state.

    `stream_clock` is the event time of the stream the event came in on (the latest event
    or time signal seen there): an event older than the retention is expired against it
    too, not only against the location's own clock, which a new location does not have.
    `backfill`: the event loads history; the changes it causes say so.
    `consume`: the caller hands the state over and will not use it again, so its
    timeline is changed in place rather than copied (a copy costs more than the rules).
    """
    c = compiled(policy)
    peers = peers or {}
    before = _ensure_policy(state or new_state(event.subject, policy), c)
    # The first 8 bytes of the content digest tell a redelivery from a reused id.
    digest = bytes.fromhex(content_digest(event)[:16])
    kept = before.timeline.keys.get((event.source, event.id))
    if kept is not None:
        reused = bool(kept) and kept != digest
        return Outcome(state=before, status="reused_id" if reused else "duplicate")
    t = to_us(event.time)
    clock = max(before.clock_us, t) if before.clock_us is not None else t
    horizon = max(clock, to_us(stream_clock)) if stream_clock is not None else clock
    short = event.short_type
    # A rating stands until the next one, so one older than the retention (a regulator's
    # ratings file loads years of them) is kept as long as the rating rule looks back.
    if t < horizon - c.kept_for(short):
        return Outcome(state=before, status="expired")
    status: Status = "late" if before.watermark_us is not None and t <= before.watermark_us else "applied"

    facts = event.data.model_dump(mode="json", exclude={"person_ref"}, exclude_none=True)
    tags, weight, concern = c.classify(short, facts)
    timeline = before.timeline if consume else before.timeline.copy()
    timeline.add(Item(t, event.source, event.id, short, facts, digest, tags, weight, concern))
    timeline.drop_before(clock - c.retention_us, clock - c.rating_retention_us)
    timeline.keep_last(policy.max_evidence_per_location)
    # Observation of a location's flow of events starts with that flow: an old rating
    # loaded with a ratings file is no sign of years of history (rises and "unusually
    # low" peers need those).
    first_seen = before.first_seen_us
    if short != "cqc_rating":
        first_seen = min(first_seen, t) if first_seen is not None else t
    staged = _evolve(before, timeline=timeline, first_seen_us=first_seen, backfill=backfill)
    advanced, current = _advance(staged, clock, c, location, peers)
    return _finish(before, advanced, current, c, location, status, backfill)


def tick(
    state: LocationState,
    location: Location | None,
    now: datetime,
    policy: Policy,
    peers: PeerView | None = None,
    *,
    consume: bool = False,
) -> Outcome:
    """Let event time pass with no new event: windows slide, scores decay, holds expire.
    `consume` as for `assess`."""
    c = compiled(policy)
    peers = peers or {}
    before = _ensure_policy(state, c)
    at = to_us(now)
    if before.clock_us is not None and at <= before.clock_us:
        return Outcome(state=before, status="duplicate")
    timeline = before.timeline
    if timeline.times and timeline.times[0] < at - c.retention_us:
        timeline = timeline if consume else timeline.copy()
        timeline.drop_before(at - c.retention_us, at - c.rating_retention_us)
    staged = _evolve(before, timeline=timeline, tick_times=[*before.tick_times, at])
    advanced, current = _advance(staged, at, c, location, peers)
    return _finish(before, advanced, current, c, location, "applied", before.backfill)


def next_due(
    state: LocationState, location: Location | None, policy: Policy, peers: PeerView | None = None
) -> datetime | None:
    """When to tick this location next: the earliest event time at which its level could
    change with no new event (None: only an event can change it)."""
    if state.clock_us is None:
        return None
    c = compiled(policy)
    if state.policy_version != policy.version:
        return from_us(state.clock_us + 1)  # a new policy: re-read at once
    at = due(
        c, state.current, state.clock_us, state.timeline, location, state.first_seen_us, peers or {}, state.peer_rates
    )
    return None if at is None else from_us(at)


def change_id(subject: str, policy_version: str, seq: int) -> str:
    """`<subject>:<policy version>:<sequence>`: a decision under another policy is another
    decision, never a repeat of one already published (the ledger keys on all but seq)."""
    return f"{subject}:{policy_version}:{seq}"


def level_change(
    location_id: str,
    location: Location | None,
    old: Level,
    current: History,
    why: list[RuleFiring],
    policy: Policy,
    seq: int,
    backfill: bool = False,
) -> LevelChange:
    spec = policy.spec(current.level)
    assert current.at is not None
    return LevelChange(
        change_id=change_id(location_id, policy.version, seq),
        sequence=seq,
        scope="location",
        location_id=location_id,
        provider_id=location.provider_id if location is not None else None,
        old_level=LevelName(old.name),
        new_level=LevelName(current.level.name),
        direction="escalation" if current.level > old else "de-escalation",
        score=current.score,
        reasons=why,
        actions=list(spec.actions) if spec is not None else [],
        meaning=spec.meaning if spec is not None else "No current concern under the policy's thresholds.",
        policy_version=policy.version,
        decided_at=from_us(current.at),
        backfill=backfill,
    )
