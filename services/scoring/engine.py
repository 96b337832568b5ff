"""The policy compiled for the incremental engine, one evaluation step composed of the
rule families' evaluators, the replay of steps between two times, and reasons built from
a step's hits only when someone reads them."""

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec

from schemas.directory import Location
from schemas.risk import EvidenceRef, Level, LevelName, RuleFiring
from services.scoring.evidence import classify
from services.scoring.policy import Policy
from services.scoring.policy_families import PeerPrior
from services.scoring.rules.accumulation import Accumulated
from services.scoring.rules.base import Evaluator, History, Hit, PeerView, Step
from services.scoring.rules.closed_culture import ClosedCultures, series_tags
from services.scoring.rules.own_rate import DAYS_PER_YEAR, observed_span, scale
from services.scoring.rules.patterns import Patterns
from services.scoring.rules.peers import Peers
from services.scoring.rules.persistence import Judged, Persisting
from services.scoring.rules.ratings import Rated
from services.scoring.rules.rises import Rises
from services.scoring.rules.triangulation import Triangulated, kind_index
from services.scoring.rules.triggers import Triggers, corroboration_tag
from services.scoring.timeline import US_PER_DAY, Item, Timeline, days_us, from_us

MAX_EVIDENCE_REFS = 20
# A CQC rating stands until the next one, often more than a year later: ratings are kept,
# and looked back on, this many times the retention.
RATING_RETENTION_FACTOR = 3
_US = timedelta(microseconds=1)
_CLASSIFIED_CACHE = 8192


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


@dataclass
class Compiled:
    """A policy made ready for the engine: rule ids as bit positions, windows in
    microseconds, one evaluator per family, and a cache of event classifications."""

    policy: Policy
    bits: dict[str, int]
    evaluators: list[Evaluator]
    peers: Peers
    kinds: list[str]
    kind_of_type: dict[str, int]
    retention_us: int
    rating_retention_us: int
    tolerance_us: int
    half_life_us: float | None
    min_at_level_us: int
    # Series whose rates a location contributes to its peers' sums: (key, tag bit,
    # window, prior) for the peer-prior rules; the peer rules' own rates come from `peers`.
    prior_series: list[tuple[str, int, int, PeerPrior]] = field(default_factory=list)
    _classified: dict[Any, tuple[int, float, bool]] = field(default_factory=dict)
    _span_us: dict[float, int] = field(default_factory=dict)
    _peer_keys: list[str] | None = None
    # Per prior series, what its span and units depend on (the same for most series).
    _prior_spans: list[tuple[float | None, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._prior_spans = [(p.per_capacity, p.min_history_days, p.window_days) for _, _, _, p in self.prior_series]

    @property
    def peer_keys(self) -> list[str]:
        """Every key of the peer sums: the peer rules', then the peer priors' series."""
        if self._peer_keys is None:
            self._peer_keys = [rule.id for rule in self.policy.peers] + [key for key, _, _, _ in self.prior_series]
        return self._peer_keys

    def peer_rates(
        self, timeline: Timeline, capacity: int, t: int, observed_days: float
    ) -> list[tuple[str, float | None]]:
        """What this location contributes to each peer sum at t (None: nothing yet)."""
        rates = self.peers.rates(timeline, capacity, t, observed_days)
        by_rule = timeline.by_rule
        # The series share a few priors (usually one): each one's span and the service's
        # units are worked out once per call. peer_rate's arithmetic, in its order.
        per_prior: dict[tuple[float | None, float, float], tuple[float, int, float] | None] = {}
        for (key, bit, _, prior), same in zip(self.prior_series, self._prior_spans, strict=True):
            if same in per_prior:
                found = per_prior[same]
            else:
                found = per_prior[same] = self._prior_span(prior, capacity, observed_days)
            if found is None:
                rates.append((key, None))
                continue
            days, span, units = found
            times = by_rule[bit]
            count = bisect_right(times, t) - bisect_right(times, t - span)  # Timeline.tagged
            rates.append((key, count / days * DAYS_PER_YEAR / units))
        return rates

    def _prior_span(self, prior: PeerPrior, capacity: int, observed_days: float) -> tuple[float, int, float] | None:
        """(days, µs, units) a peer rate is taken over and per; None while peer_rate gives
        None (too little history, no size)."""
        units = scale(prior.per_capacity, capacity)
        if units is None or observed_days < prior.min_history_days:
            return None
        days = observed_span(prior, observed_days)
        span = self._span_us.get(days)
        if span is None:
            # Whole weeks or the window: a few dozen values.
            span = self._span_us[days] = days_us(days)
        return days, span, units

    def classify(self, event_type: str, facts: dict[str, Any]) -> tuple[int, float, bool]:
        """Tag mask, accumulation weight and whether a triangulation concern."""
        key = (event_type, _hashable(facts))
        found = self._classified.get(key)
        if found is None:
            tags, weight, concern = classify(self.policy, event_type, facts)
            found = (sum(1 << self.bits[t] for t in tags), weight, concern)
            if len(self._classified) >= _CLASSIFIED_CACHE:
                self._classified.clear()
            self._classified[key] = found
        return found

    def kept_for(self, event_type: str) -> int:
        """How far back evidence of this type is kept, and so accepted (µs)."""
        return self.rating_retention_us if event_type == "cqc_rating" else self.retention_us

    def timeline(self) -> Timeline:
        return Timeline(
            tagged_rules=len(self.bits),
            half_life_us=self.half_life_us,
            kind_of_type=self.kind_of_type,
            kinds=len(self.kinds),
        )


def tag_names(policy: Policy) -> list[str]:
    """Every tag an event can carry, in bit order: the rules' ids, then the tags of the
    events that corroborate a flag and of the closed-culture series."""
    rules = [*policy.triggers, *policy.patterns, *policy.rises, *policy.peers]
    names = [rule.id for rule in rules]
    names += [corroboration_tag(t.id) for t in policy.triggers if t.corroborate is not None]
    for rule in policy.closed_culture:
        names += series_tags(rule)
    return names


def prior_keys(policy: Policy) -> dict[str, str]:
    """Per rule (or closed-culture series) with a peer prior, the key of the peer sums it
    reads: rules that count the same events with the same prior (a short and a long
    window of one signal) share the first one's sums."""
    keys: dict[str, str] = {}
    first: dict[tuple[str, str], str] = {}
    named = [(r.id, r.when, r.prior) for r in policy.rises]
    for rule in policy.closed_culture:
        named += [(key, s.when, s.prior) for key, s in zip(series_tags(rule), (rule.voices, rule.reports), strict=True)]

    for name, when, prior in named:
        if prior is not None:
            signature = (repr(when), repr(prior))
            keys[name] = first.setdefault(signature, name)
    return keys


def _prior_series(policy: Policy, bits: Mapping[str, int]) -> list[tuple[str, int, int, PeerPrior]]:
    """The series a location contributes to its peers' sums: (key, tag bit, window, prior)."""
    priors = {r.id: r.prior for r in policy.rises if r.prior is not None}
    for rule in policy.closed_culture:
        for key, series in zip(series_tags(rule), (rule.voices, rule.reports), strict=True):
            if series.prior is not None:
                priors[key] = series.prior
    return [
        (name, bits[name], days_us(priors[name].window_days), priors[name])
        for name, key in prior_keys(policy).items()
        if key == name
    ]


def compile_policy(policy: Policy) -> Compiled:
    bits = {name: index for index, name in enumerate(tag_names(policy))}
    kinds, kind_of_type = kind_index(policy.triangulation)
    peers = Peers(policy.peers, bits)
    patterns = Patterns(policy.patterns, bits)
    keys = prior_keys(policy)
    rises = Rises(policy.rises, bits, keys)
    evaluators: list[Evaluator] = [Triggers(policy.triggers, bits, kind_of_type), patterns, rises, peers]
    judged: dict[str, Judged] = {}
    judged.update({r.id: Judged(patterns.held, "tag", bits[r.id]) for r in policy.patterns})
    judged.update({r.id: Judged(rises.held, "tag", bits[r.id]) for r in policy.rises})
    judged.update({r.id: Judged(peers.held, "tag", bits[r.id]) for r in policy.peers})
    retention_us = policy.retention // _US
    if policy.accumulation is not None:
        accumulated = Accumulated(policy.accumulation, retention_us)
        evaluators.append(accumulated)
        judged[policy.accumulation.id] = Judged(accumulated.held, "weighted", by_band=True)
    if policy.triangulation is not None:
        evaluators.append(Triangulated(policy.triangulation))
    if policy.ratings is not None:
        evaluators.append(Rated(policy.ratings, retention_us * RATING_RETENTION_FACTOR))
    if policy.closed_culture:
        evaluators.append(ClosedCultures(policy.closed_culture, bits, keys))
    if policy.persistence:
        # Last: it reads what the other families found at the step.
        evaluators.append(Persisting(policy.persistence, judged))
    acc = policy.accumulation
    return Compiled(
        policy=policy,
        bits=bits,
        evaluators=evaluators,
        peers=peers,
        kinds=kinds,
        kind_of_type=kind_of_type,
        retention_us=retention_us,
        rating_retention_us=retention_us * RATING_RETENTION_FACTOR,
        tolerance_us=policy.tolerance // _US,
        half_life_us=acc.half_life_days * US_PER_DAY if acc is not None else None,
        min_at_level_us=days_us(policy.min_days_at_level),
        prior_series=_prior_series(policy, bits),
    )


_COMPILED: dict[int, Compiled] = {}


def compiled(policy: Policy) -> Compiled:
    """The policy's compiled form, made once per policy object (policies are immutable)."""
    found = _COMPILED.get(id(policy))
    if found is None or found.policy is not policy:
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        found = _COMPILED[id(policy)] = compile_policy(policy)
    return found


def step(
    c: Compiled,
    previous: History,
    t: int,
    timeline: Timeline,
    location: Location | None,
    first_seen: int | None,
    peers: PeerView,
    own_peer_rates: Mapping[str, tuple[str, float]],
    explain: bool,
    memo: dict[object, Any] | None = None,
) -> History:
    """Evaluate every rule family at time t over the evidence up to t, with hysteresis.
    The hits (the reasons' raw material) are kept only when `explain`."""
    observed_days = (t - first_seen) / US_PER_DAY if first_seen is not None else 0.0
    s = Step(
        t,
        timeline,
        previous,
        location,
        observed_days,
        peers,
        own_peer_rates,
        explain,
        {} if memo is None else memo,
        retention_us=c.retention_us,
    )
    for evaluator in c.evaluators:
        evaluator.evaluate(s)
    hits = s.hits
    target = s.top
    level, since = previous.level, previous.since
    if target > level:
        level, since = target, t
    elif target < level:
        held_days = (t - since) / US_PER_DAY if since is not None else math.inf
        if held_days >= c.policy.min_days_at_level:
            level, since = target, t
        elif explain:
            hits.append(
                Hit(
                    "minimum_time_at_level",
                    "hold",
                    level,
                    f"Held at {level.label} for at least {c.policy.min_days_at_level:g} days after the change "
                    f"({held_days:.1f} so far), though the rules now indicate {target.label}",
                    None,
                )
            )
    if explain:
        hits.sort(key=lambda h: (-h.level, h.rule_id))
    return History(
        level=level,
        since=since,
        active=frozenset(s.active),
        accumulation_band=s.accumulation_band,
        triangulation_level=s.triangulation_level,
        at=t,
        score=round(s.score, 4),
        # Rounded as the score is: a decaying sum's last bits depend on the order its
        # events arrived in, and the same events must give the same state.
        hits=tuple(_rounded(h) for h in hits) if explain else (),
    )


def _rounded(hit: Hit) -> Hit:
    if hit.measure is None or hit.measure == round(hit.measure, 4):
        return hit
    return msgspec.structs.replace(hit, measure=round(hit.measure, 4))


def replay(
    c: Compiled,
    history: History,
    start: int | None,
    end: int,
    timeline: Timeline,
    location: Location | None,
    first_seen: int | None,
    peers: PeerView,
    peer_rates: Mapping[str, tuple[str, float]],
    *,
    final: bool,
    tick_times: Sequence[int] = (),
    memo: dict[object, Any] | None = None,
) -> History:
    """Step at every evidence and tick time in (start, end], in time order; with `final`,
    also at `end` itself, explaining that last step.

    Steps fall only on evidence and tick times (and the final time), never on watermarks:
    the watermarks a location passes through depend on arrival order, the input does not.
    """
    times = timeline.step_times(start, end)
    ticks = [t for t in tick_times if (start is None or t > start) and t <= end]
    if final:
        step_times = sorted({*times, *ticks, end})
    elif ticks or len(times) > 1:
        step_times = sorted({*times, *ticks})
    else:
        step_times = times
    last = len(step_times) - 1
    for index, t in enumerate(step_times):
        history = step(c, history, t, timeline, location, first_seen, peers, peer_rates, final and index == last, memo)
    return history


def due(
    c: Compiled,
    current: History,
    t: int,
    timeline: Timeline,
    location: Location | None,
    first_seen: int | None,
    peers: PeerView,
    own_peer_rates: Mapping[str, tuple[str, float]],
) -> int | None:
    """The earliest time after t at which a location at a level above none could change
    level with no new event: a rule's window passing its oldest event, the score decaying
    through its band's threshold, the minimum time at the level running out. None for a
    location at none (nothing but an event raises a level from none)."""
    if current.level is Level.none:
        return None
    observed_days = (t - first_seen) / US_PER_DAY if first_seen is not None else 0.0
    s = Step(t, timeline, current, location, observed_days, peers, own_peer_rates, retention_us=c.retention_us)
    times = [e.due(s) for e in c.evaluators]
    if current.since is not None:
        times.append(current.since + c.min_at_level_us)
    return min((x for x in times if x is not None and x > t), default=None)


def _items(hit: Hit, timeline: Timeline) -> list[Item]:
    if hit.selector == "tag":
        return [i for i in timeline.between(hit.start, hit.end) if i.tags >> hit.bit & 1]
    if hit.selector == "weighted":
        return [i for i in timeline.between(hit.start, hit.end) if i.weight > 0]
    if hit.selector == "tags":
        return [i for i in timeline.between(hit.start, hit.end) if i.tags & hit.bit]
    if hit.selector == "concerns":
        return [i for i in timeline.between(hit.start, hit.end) if i.concern]
    if hit.selector == "named":
        by_key = {(i.source, i.id): i for i in timeline.items}
        return [by_key[k] for k in hit.named if k in by_key]
    return []


def reasons(hits: Sequence[Hit], timeline: Timeline) -> list[RuleFiring]:
    """The hits as reasons with their evidence (the latest few of each rule's events)."""
    out = []
    for hit in hits:
        items = _items(hit, timeline)
        out.append(
            RuleFiring(
                rule_id=hit.rule_id,
                family=hit.family,
                level=LevelName(hit.level.name),
                description=hit.description,
                measure=None if hit.measure is None else round(hit.measure, 4),
                evidence_count=len(items),
                evidence=[
                    EvidenceRef(event_id=i.id, source=i.source, type=i.type, time=from_us(i.time))
                    for i in items[-MAX_EVIDENCE_REFS:]
                ],
            )
        )
    return out
