"""The previous risk model, kept unchanged as the oracle of the incremental engine.

`services/scoring/model.py` replaced it (issue 11): the equivalence tests and
`bench/scoring.py` run both on the same events. Nothing in the services imports it.
It rescans every rule's window at every step (O(n) per event); do not extend it.

The risk model: a pure function from (state, directory record, event) to new state
and, when the level moves, a level change. No Faust, no Kafka: the worker only feeds it.

Time is event time. The state keeps the evidence of the retention horizon and two
histories: `committed`, evaluated up to the watermark (latest event time minus the
out-of-order tolerance), and `current`, which replays the events after the watermark in
time order on top of it. So within the tolerance the current level depends on which
events have arrived, never on the order they arrived in. Older ("late") events are
still counted from then on, but the committed history is not rewritten for them.
"""

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.directory import Location
from schemas.events import Event
from schemas.risk import EvidenceRef, Family, Level, LevelChange, LevelName, RuleFiring
from services.scoring.evidence import Evidence, from_event, retag
from services.scoring.model import change_id
from services.scoring.policy import Peer, Policy
from services.scoring.rules.peer_stats import PeerStats, PeerUpdate
from services.scoring.rules.rises import poisson_upper_tail

MAX_EVIDENCE_REFS = 20
DAY = timedelta(days=1)
# A CQC rating stands until the next one, often more than a year later: ratings are kept,
# and looked back on, this many times the retention.
RATING_RETENTION_FACTOR = 3


# (peer rule id, service type) -> stats over every location of that type.
PeerView = Mapping[tuple[str, str], PeerStats]


class History(BaseModel):
    """What hysteresis needs to remember between evaluations."""

    model_config = ConfigDict(frozen=True)

    level: Level = Level.none
    since: datetime | None = None
    active: frozenset[str] = frozenset()
    accumulation_band: Level = Level.none
    triangulation_level: Level = Level.none
    at: datetime | None = None
    reasons: tuple[RuleFiring, ...] = ()
    score: float = 0.0


class LocationState(BaseModel):
    location_id: str
    policy_version: str
    clock: datetime | None = None
    watermark: datetime | None = None
    first_seen: datetime | None = None
    evidence: list[Evidence] = []
    committed: History = History()
    current: History = History()
    change_seq: int = 0
    # Times of ticks not yet behind the watermark: the committed history must step at them
    # too, or a fall a tick found (and published) is forgotten by the next event.
    tick_times: list[datetime] = []
    # What this location last contributed to each peer rule's sums: (service type, rate).
    peer_rates: dict[str, tuple[str, float]] = {}
    # The last event applied came from a backfill: changes that time passing makes are
    # then decisions about the past too. A live event clears it.
    backfill: bool = False


# reused_id: an event id (of its source) already kept, with other content.
Status = Literal["applied", "duplicate", "late", "expired", "reused_id"]


@dataclass
class Outcome:
    state: LocationState
    status: Status
    change: LevelChange | None = None
    peer_updates: list[PeerUpdate] = field(default_factory=list)


# --- rule evaluation -----------------------------------------------------------------


@dataclass
class _Window:
    """Evidence up to a time, with fast slicing by time."""

    evidence: Sequence[Evidence]
    times: list[datetime]

    def between(self, start: datetime, end: datetime) -> Sequence[Evidence]:
        """Evidence with start < time <= end."""
        lo = bisect.bisect_right(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        return self.evidence[lo:hi]


@dataclass(frozen=True)
class _Hit:
    """A rule that fired; turned into a RuleFiring only where reasons are kept."""

    rule_id: str
    family: Family
    level: Level
    description: str
    measure: float | None
    items: Sequence[Evidence]

    def firing(self) -> RuleFiring:
        latest = self.items[-MAX_EVIDENCE_REFS:]
        return RuleFiring(
            rule_id=self.rule_id,
            family=self.family,
            level=LevelName(self.level.name),
            description=self.description,
            measure=None if self.measure is None else round(self.measure, 4),
            evidence_count=len(self.items),
            evidence=[EvidenceRef(event_id=e.id, source=e.source, type=e.type, time=e.time) for e in latest],
        )


def _firing(
    rule_id: str, family: Family, level: Level, description: str, measure: float | None, items: Sequence[Evidence]
) -> _Hit:
    return _Hit(rule_id, family, level, description, measure, items)


def _peer_rate(rule: Peer, location: Location, window: _Window, t: datetime) -> float:
    items = [e for e in window.between(t - rule.window_days * DAY, t) if rule.id in e.tags]
    return len(items) / location.capacity * rule.per_capacity


def _step(
    history: History,
    t: datetime,
    window: _Window,
    policy: Policy,
    location: Location | None,
    first_seen: datetime | None,
    peers: PeerView,
    own_peer_rates: Mapping[str, tuple[str, float]],
    explain: bool,
) -> History:
    """Evaluate every rule at time t over evidence up to t, with hysteresis.

    Reasons (pydantic objects with evidence references) are built only when `explain`:
    the intermediate steps of a replay need levels, not explanations.
    """
    firings: list[_Hit] = []
    active: set[str] = set()
    observed_days = (t - first_seen) / DAY if first_seen is not None else 0.0

    for trigger in policy.triggers:
        items = [e for e in window.between(t - trigger.hold_days * DAY, t) if trigger.id in e.tags]
        if items:
            firings.append(_firing(trigger.id, "trigger", Level[trigger.level], trigger.description, len(items), items))

    capacity = location.capacity if location is not None else None
    for pattern in policy.patterns:
        items = [e for e in window.between(t - pattern.window_days * DAY, t) if pattern.id in e.tags]
        was = pattern.id in history.active
        enter = pattern.enter_threshold(capacity)
        if len(items) >= enter or (was and len(items) >= pattern.exit_threshold(capacity)):
            active.add(pattern.id)
            description = pattern.description
            if pattern.per_capacity is not None:
                description += (
                    f" ({len(items)} in {pattern.window_days:g} days; the threshold for its size is {enter}: "
                    f"{pattern.enter_rate:g} per {pattern.per_capacity:g}, at least {pattern.enter_count})"
                )
            firings.append(_firing(pattern.id, "pattern", Level[pattern.level], description, len(items), items))

    for rise in policy.rises:
        if observed_days < rise.min_history_days:
            continue
        recent_start = t - rise.recent_days * DAY
        baseline_days = min(rise.baseline_days, observed_days - rise.recent_days)
        if baseline_days <= 0:
            continue
        recent = [e for e in window.between(recent_start, t) if rise.id in e.tags]
        baseline = [e for e in window.between(recent_start - baseline_days * DAY, recent_start) if rise.id in e.tags]
        # Half an event of pseudo-count: a quiet history is not proof of a zero rate.
        expected = (len(baseline) + 0.5) * rise.recent_days / baseline_days
        p = poisson_upper_tail(len(recent), expected)
        was = rise.id in history.active
        if (len(recent) >= rise.min_recent_count and p < rise.enter_p) or (was and p < rise.exit_p):
            active.add(rise.id)
            firings.append(
                _firing(
                    rise.id,
                    "rise",
                    Level[rise.level],
                    f"{rise.description} ({len(recent)} in {rise.recent_days:g} days against "
                    f"{expected:.1f} expected; p={p:.4f})",
                    p,
                    recent,
                )
            )

    if location is not None:
        for peer in policy.peers:
            own = own_peer_rates.get(peer.id)
            stats = peers.get((peer.id, location.service_type.value), PeerStats())
            others = stats.without(own[1] if own and own[0] == location.service_type.value else None)
            summary = others.mean_sd()
            if others.n < peer.min_peers or summary is None or summary[1] <= 0:
                continue
            mean, sd = summary
            items = [e for e in window.between(t - peer.window_days * DAY, t) if peer.id in e.tags]
            rate = len(items) / location.capacity * peer.per_capacity
            z = (rate - mean) / sd
            was = peer.id in history.active
            # (high_z None, a low-side-only rule, came after this model: no high side.)
            high = (
                peer.high_z is not None
                and len(items) >= peer.min_count
                and (z >= peer.high_z or (was and z >= peer.high_z - peer.exit_margin))
            )
            low = (
                peer.low_z is not None
                and observed_days >= peer.min_history_days
                and (z <= peer.low_z or (was and z <= peer.low_z + peer.exit_margin))
            )
            if high or low:
                active.add(peer.id)
                side = "unusually high" if high else "unusually low (possible under-reporting)"
                firings.append(
                    _firing(
                        peer.id,
                        "peer",
                        Level[peer.level],
                        f"{peer.description}: {side}, {rate:.2f} per {peer.per_capacity:g} "
                        f"against a mean of {mean:.2f} over {others.n} peers (z={z:.2f})",
                        z,
                        items,
                    )
                )

    score = 0.0
    band = Level.none
    acc = policy.accumulation
    if acc is not None:
        horizon = window.between(t - policy.retention, t)
        weighted = [e for e in horizon if e.weight > 0]
        score = sum(e.weight * 0.5 ** (((t - e.time) / DAY) / acc.half_life_days) for e in weighted)
        if acc.per_capacity is not None and capacity is not None:
            score *= acc.per_capacity / max(capacity, acc.per_capacity)
        entered = [Level[name] for name, value in acc.enter.items() if score >= value]
        band = min(max(entered, default=Level.none), Level[acc.max_level])
        for held in range(min(history.accumulation_band, Level[acc.max_level]), band, -1):
            threshold = acc.enter.get(LevelName(Level(held).name))
            if threshold is not None and score >= threshold * acc.exit_ratio:
                band = Level(held)
                break
        if band > Level.none:
            unit = f" per {acc.per_capacity:g} beds or people" if acc.per_capacity is not None else ""
            firings.append(
                _firing(acc.id, "accumulation", band, f"{acc.description} (score {score:.1f}{unit})", score, weighted)
            )

    tri_level = Level.none
    tri = policy.triangulation
    if tri is not None:
        items = [e for e in window.between(t - tri.window_days * DAY, t) if e.concern]
        per_kind: dict[str, int] = {}
        for e in items:
            if e.type in tri.source_kinds:
                kind = tri.source_kinds[e.type]
                per_kind[kind] = per_kind.get(kind, 0) + 1
        needed = tri.per_kind(capacity)
        kinds = sorted(kind for kind, count in per_kind.items() if count >= needed)
        for step in tri.steps:
            if len(kinds) >= step.min_kinds or (
                Level[step.level] <= history.triangulation_level and len(kinds) >= step.min_kinds - 1
            ):
                tri_level = max(tri_level, Level[step.level])
        if tri_level > Level.none:
            firings.append(
                _firing(
                    tri.id,
                    "triangulation",
                    tri_level,
                    f"{tri.description}: {len(kinds)} kinds ({', '.join(kinds)})"
                    + (f", each with at least {needed} concerns for its size" if needed > 1 else ""),
                    len(kinds),
                    items,
                )
            )

    ratings = policy.ratings
    if ratings is not None:
        rated = sorted(
            (e for e in window.between(t - policy.retention * RATING_RETENTION_FACTOR, t) if e.type == "cqc_rating"),
            key=lambda e: (e.facts.get("published", ""), e.time),
        )
        if rated and rated[-1].facts.get("overall") == "inadequate":
            firings.append(
                _firing(
                    ratings.inadequate_id,
                    "rating",
                    Level[ratings.inadequate_level],
                    "Rated Inadequate by CQC",
                    None,
                    rated[-1:],
                )
            )
        last = rated[-ratings.repeat_ri_count :]
        if len(last) == ratings.repeat_ri_count and all(e.facts.get("overall") == "requires_improvement" for e in last):
            firings.append(
                _firing(
                    ratings.repeat_ri_id,
                    "rating",
                    Level[ratings.repeat_ri_level],
                    f"Rated Requires improvement {ratings.repeat_ri_count} times in a row",
                    None,
                    last,
                )
            )

    target = max((f.level for f in firings), default=Level.none)
    level, since = history.level, history.since
    if target > level:
        level, since = target, t
    elif target < level:
        held_days = (t - since) / DAY if since is not None else math.inf
        if held_days >= policy.min_days_at_level:
            level, since = target, t
        else:
            firings.append(
                _Hit(
                    "minimum_time_at_level",
                    "hold",
                    level,
                    f"Held at {level.label} for at least {policy.min_days_at_level:g} days after the change "
                    f"({held_days:.1f} so far), though the rules now indicate {target.label}",
                    None,
                    (),
                )
            )
    firings.sort(key=lambda f: (-f.level, f.rule_id))
    return History(
        level=level,
        since=since,
        active=frozenset(active),
        accumulation_band=band,
        triangulation_level=tri_level,
        at=t,
        reasons=tuple(f.firing() for f in firings) if explain else (),
        score=round(score, 4),
    )


def _replay(
    history: History,
    start: datetime | None,
    end: datetime,
    evidence: list[Evidence],
    policy: Policy,
    location: Location | None,
    first_seen: datetime | None,
    peers: PeerView,
    peer_rates: Mapping[str, tuple[str, float]],
    *,
    final: bool,
    tick_times: Sequence[datetime] = (),
) -> History:
    """Step at every evidence and tick time in (start, end], in time order; with `final`,
    also at `end` itself, explaining that last step.

    Steps fall only on evidence and tick times (and the final time), never on watermarks:
    the watermarks a location passes through depend on arrival order, the input does not.
    """
    times = [e.time for e in evidence]
    lo = 0 if start is None else bisect.bisect_right(times, start)
    hi = bisect.bisect_right(times, end)
    ticks = {t for t in tick_times if (start is None or t > start) and t <= end}
    step_times = sorted({*times[lo:hi], *ticks, end} if final else {*times[lo:hi], *ticks})
    for index, t in enumerate(step_times):
        upto = bisect.bisect_right(times, t)
        window = _Window(evidence[:upto], times[:upto])
        explain = final and index == len(step_times) - 1
        history = _step(history, t, window, policy, location, first_seen, peers, peer_rates, explain)
    return history


# --- the public functions ------------------------------------------------------------


def _kept_for(event_type: str, policy: Policy) -> timedelta:
    """How far back evidence of this type is kept, and so accepted."""
    return policy.retention * RATING_RETENTION_FACTOR if event_type == "cqc_rating" else policy.retention


def _retained(evidence: list[Evidence], clock: datetime, policy: Policy) -> list[Evidence]:
    return [e for e in evidence if e.time >= clock - _kept_for(e.type, policy)]


def new_state(location_id: str, policy: Policy) -> LocationState:
    return LocationState(location_id=location_id, policy_version=policy.version)


def _ensure_policy(state: LocationState, policy: Policy) -> LocationState:
    if state.policy_version == policy.version:
        return state
    # A new policy version re-reads the kept evidence with the new rules.
    return state.model_copy(
        update={
            "policy_version": policy.version,
            "evidence": [retag(policy, e) for e in state.evidence],
        }
    )


def _advance(
    state: LocationState,
    clock: datetime,
    policy: Policy,
    location: Location | None,
    peers: PeerView,
) -> tuple[LocationState, History]:
    watermark = clock - policy.tolerance
    committed = state.committed
    if state.watermark is None or watermark > state.watermark:
        committed = _replay(
            committed,
            state.watermark,
            watermark,
            state.evidence,
            policy,
            location,
            state.first_seen,
            peers,
            state.peer_rates,
            final=False,
            tick_times=state.tick_times,
        )
    else:
        watermark = state.watermark
    current = _replay(
        committed,
        watermark,
        clock,
        state.evidence,
        policy,
        location,
        state.first_seen,
        peers,
        state.peer_rates,
        final=True,
        tick_times=state.tick_times,
    )
    pending = [t for t in state.tick_times if t > watermark]
    update = {"clock": clock, "watermark": watermark, "committed": committed, "tick_times": pending}
    return state.model_copy(update=update), current


def _finish(
    before: LocationState,
    state: LocationState,
    current: History,
    policy: Policy,
    location: Location | None,
    peers: PeerView,
    status: Status,
    backfill: bool,
) -> Outcome:
    peer_updates: list[PeerUpdate] = []
    peer_rates = dict(state.peer_rates)
    if location is not None and state.clock is not None:
        times = [e.time for e in state.evidence]
        window = _Window(state.evidence, times)
        for peer in policy.peers:
            new = (location.service_type.value, round(_peer_rate(peer, location, window, state.clock), 6))
            old = peer_rates.get(peer.id)
            if old != new:
                peer_updates.append(PeerUpdate(peer.id, old, new))
                peer_rates[peer.id] = new
    change = None
    seq = state.change_seq
    if current.level != before.current.level:
        seq += 1
        change = level_change(state.location_id, location, before.current.level, current, policy, seq, backfill)
    state = state.model_copy(update={"current": current, "change_seq": seq, "peer_rates": peer_rates})
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
) -> Outcome:
    """Apply one event to a location's state.

    `stream_clock` is the event time of the stream the event came in on (the latest event
    or time signal seen there): an event older than the retention is expired against it
    too, not only against the location's own clock, which a new location does not have.
    `backfill`: the event loads history; the changes it causes say so.
    """
    peers = peers or {}
    before = _ensure_policy(state or new_state(event.subject, policy), policy)
    item = from_event(policy, event)
    kept = next((e for e in before.evidence if e.id == event.id and e.source == event.source), None)
    if kept is not None:
        reused = bool(kept.digest) and kept.digest != item.digest
        return Outcome(state=before, status="reused_id" if reused else "duplicate")
    clock = max(before.clock, event.time) if before.clock is not None else event.time
    horizon = max(clock, stream_clock) if stream_clock is not None else clock
    # A rating stands until the next one, so one older than the retention (a regulator's
    # ratings file loads years of them) is kept as long as the rating rule looks back.
    if event.time < horizon - _kept_for(item.type, policy):
        return Outcome(state=before, status="expired")
    status: Status = "late" if before.watermark is not None and event.time <= before.watermark else "applied"

    evidence = list(before.evidence)
    bisect.insort(evidence, item, key=lambda e: (e.time, e.source, e.id))
    evidence = _retained(evidence, clock, policy)[-policy.max_evidence_per_location :]
    # Observation of a location's flow of events starts with that flow: an old rating
    # loaded with a ratings file is no sign of years of history (rises and "unusually
    # low" peers need those).
    first_seen = before.first_seen
    if item.type != "cqc_rating":
        first_seen = min(first_seen, event.time) if first_seen is not None else event.time
    staged = before.model_copy(update={"evidence": evidence, "first_seen": first_seen, "backfill": backfill})
    advanced, current = _advance(staged, clock, policy, location, peers)
    return _finish(before, advanced, current, policy, location, peers, status, backfill)


def tick(
    state: LocationState,
    location: Location | None,
    now: datetime,
    policy: Policy,
    peers: PeerView | None = None,
) -> Outcome:
    """Let event time pass with no new event: windows slide, scores decay, holds expire."""
    peers = peers or {}
    before = _ensure_policy(state, policy)
    if before.clock is not None and now <= before.clock:
        return Outcome(state=before, status="duplicate")
    staged = before.model_copy(
        update={"evidence": _retained(before.evidence, now, policy), "tick_times": [*before.tick_times, now]}
    )
    advanced, current = _advance(staged, now, policy, location, peers)
    return _finish(before, advanced, current, policy, location, peers, "applied", before.backfill)


def level_change(
    location_id: str,
    location: Location | None,
    old: Level,
    current: History,
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
        reasons=list(current.reasons),
        actions=list(spec.actions) if spec is not None else [],
        meaning=spec.meaning if spec is not None else "No current concern under the policy's thresholds.",
        policy_version=policy.version,
        decided_at=current.at,
        backfill=backfill,
    )
