"""A location's kept evidence, indexed for the rules: every count in a window is two
binary searches, and the decaying accumulation score is a difference of prefix sums.

Times are integer microseconds since the epoch, so that windows computed here fall on
exactly the microseconds the reference model's `datetime` arithmetic gives.
"""

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DAY = timedelta(days=1)
US_PER_DAY = 86_400_000_000
# Beyond this many half-lives from the base the prefix sums would lose range: rebase.
_MAX_HALF_LIVES = 600.0


def to_us(t: datetime) -> int:
    return (t - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


# days_us of the spans asked for lately: a step asks for the same few (a young service's
# baselines, the same for every rule with one recent window) many times.
_SPANS: dict[float, int] = {}
_SPANS_KEPT = 4096


def days_us(days: float) -> int:
    """A span of days in microseconds, rounded as `timedelta(days=1) * days` rounds."""
    found = _SPANS.get(days)
    if found is None:
        if len(_SPANS) >= _SPANS_KEPT:
            _SPANS.clear()
        found = _SPANS[days] = (_DAY * days) // _US
    return found


class Item(msgspec.Struct, array_like=True, frozen=True):
    """One kept event: what the rules and explanations need, never a person reference.

    `facts` are kept so that a new policy version can classify the evidence again;
    `tags` is a bit mask over the compiled policy's tagged rules (see `engine.Compiled`).
    """

    time: int
    source: str
    id: str
    type: str
    facts: dict[str, Any]
    # The first 8 bytes of the content digest: tells a redelivery from a reused id.
    digest: bytes
    tags: int
    weight: float
    concern: bool


def _order(item: Item) -> tuple[int, str, str]:
    return (item.time, item.source, item.id)


@dataclass
class Timeline:
    """Items sorted by (time, source, id) and, per tagged rule, per triangulation kind and
    for the weighted (accumulation) items, sorted times. Copy before changing: states are
    values (`copy`)."""

    tagged_rules: int
    half_life_us: float | None
    kind_of_type: dict[str, int]
    kinds: int
    items: list[Item] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    keys: dict[tuple[str, str], bytes] = field(default_factory=dict)
    by_rule: list[list[int]] = field(default_factory=list)
    by_kind: list[list[int]] = field(default_factory=list)
    concerns: list[int] = field(default_factory=list)
    weighted: list[int] = field(default_factory=list)
    # cumulative[i] - cumulative[j]: the sum of weight * 2**((time - base) / half-life)
    # over weighted items j..i-1.
    cumulative: list[float] = field(default_factory=lambda: [0.0])
    base: int = 0
    ratings: list[Item] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.by_rule:
            self.by_rule = [[] for _ in range(self.tagged_rules)]
        if not self.by_kind:
            self.by_kind = [[] for _ in range(self.kinds)]

    def copy(self) -> "Timeline":
        return Timeline(
            tagged_rules=self.tagged_rules,
            half_life_us=self.half_life_us,
            kind_of_type=self.kind_of_type,
            kinds=self.kinds,
            items=list(self.items),
            times=list(self.times),
            keys=dict(self.keys),
            by_rule=[list(times) for times in self.by_rule],
            by_kind=[list(times) for times in self.by_kind],
            concerns=list(self.concerns),
            weighted=list(self.weighted),
            cumulative=list(self.cumulative),
            base=self.base,
            ratings=list(self.ratings),
        )

    def __len__(self) -> int:
        return len(self.items)

    # --- changes ---------------------------------------------------------------------

    def add(self, item: Item) -> None:
        items = self.items
        order = _order(item)
        # Mostly the newest: bisect_right's answer without its key calls.
        at = len(items) if not items or _order(items[-1]) <= order else bisect.bisect_right(items, order, key=_order)
        self.items.insert(at, item)
        self.times.insert(at, item.time)
        self.keys[(item.source, item.id)] = item.digest
        for bit in _bits(item.tags):
            bisect.insort_right(self.by_rule[bit], item.time)
        if item.concern:
            bisect.insort_right(self.concerns, item.time)
            kind = self.kind_of_type.get(item.type)
            if kind is not None:
                bisect.insort_right(self.by_kind[kind], item.time)
        if item.weight > 0 and self.half_life_us is not None:
            self._add_weighted(item)
        if item.type == "cqc_rating":
            bisect.insort_right(self.ratings, item, key=_order)

    def _add_weighted(self, item: Item) -> None:
        assert self.half_life_us is not None
        if not self.weighted:
            self.base = item.time
            self.cumulative = [self.cumulative[0]]
        elif abs(item.time - self.base) / self.half_life_us > _MAX_HALF_LIVES:
            self._rebase(item.time)
        at = bisect.bisect_right(self.weighted, item.time)
        value = item.weight * 2.0 ** ((item.time - self.base) / self.half_life_us)
        self.weighted.insert(at, item.time)
        cumulative = self.cumulative
        # Usually the newest weighted item: one append. A late one shifts the sums after it.
        cumulative.insert(at + 1, cumulative[at] + value)
        for i in range(at + 2, len(cumulative)):
            cumulative[i] += value

    def _rebase(self, base: int) -> None:
        assert self.half_life_us is not None
        weights = self._weights()
        self.base = base
        cumulative = [0.0]
        for time, weight in zip(self.weighted, weights, strict=True):
            cumulative.append(cumulative[-1] + weight * 2.0 ** ((time - base) / self.half_life_us))
        self.cumulative = cumulative

    def _weights(self) -> list[float]:
        # Weighted items in time order; same-time items in the items' order.
        return [item.weight for item in self.items if item.weight > 0]

    def drop_before(self, cutoff: int, rating_cutoff: int) -> None:
        """Forget items older than the cutoff; ratings, older than their own (earlier) one."""
        k = bisect.bisect_left(self.times, cutoff)
        if k == 0:
            return
        kept = [i for i in self.items[:k] if i.type == "cqc_rating" and i.time >= rating_cutoff]
        if len(kept) < k:
            self._remove_prefix(k, kept)

    def keep_last(self, count: int) -> None:
        """Keep only the newest `count` items (the policy's cap per location)."""
        if len(self.items) > count:
            self._remove_prefix(len(self.items) - count, [])

    def _remove_prefix(self, k: int, kept: list[Item]) -> None:
        """Remove the first k items but those in `kept` (old ratings still looked back on)."""
        kept_ids = {id(i) for i in kept}
        gone = [i for i in self.items[:k] if id(i) not in kept_ids]
        self.items = kept + self.items[k:]
        self.times = [i.time for i in kept] + self.times[k:]
        for g in gone:
            self.keys.pop((g.source, g.id), None)
            for bit in _bits(g.tags):
                _remove_time(self.by_rule[bit], g.time)
            if g.concern:
                _remove_time(self.concerns, g.time)
                kind = self.kind_of_type.get(g.type)
                if kind is not None:
                    _remove_time(self.by_kind[kind], g.time)
            if g.weight > 0 and self.half_life_us is not None:
                self._remove_weighted(g.time)
        if any(g.type == "cqc_rating" for g in gone):
            gone_ids = {id(g) for g in gone}
            self.ratings = [r for r in self.ratings if id(r) not in gone_ids]

    def _remove_weighted(self, time: int) -> None:
        at = bisect.bisect_left(self.weighted, time)
        value = self.cumulative[at + 1] - self.cumulative[at]
        del self.weighted[at]
        del self.cumulative[at + 1]
        if at == 0:
            # The oldest: the earlier sums keep the differences right without touching the rest.
            self.cumulative[0] += value
        else:
            for i in range(at + 1, len(self.cumulative)):
                self.cumulative[i] -= value

    # --- queries ---------------------------------------------------------------------

    def count(self, times: list[int], start: int, end: int) -> int:
        """How many of these times fall in (start, end]."""
        return bisect.bisect_right(times, end) - bisect.bisect_right(times, start)

    def tagged(self, bit: int, start: int, end: int) -> int:
        return self.count(self.by_rule[bit], start, end)

    def score(self, start: int, end: int) -> tuple[float, int]:
        """The decayed weight at `end` of weighted items in (start, end], and how many."""
        if self.half_life_us is None or not self.weighted:
            return 0.0, 0
        lo = bisect.bisect_right(self.weighted, start)
        hi = bisect.bisect_right(self.weighted, end)
        if hi <= lo:
            return 0.0, 0
        total = (self.cumulative[hi] - self.cumulative[lo]) * 2.0 ** ((self.base - end) / self.half_life_us)
        return max(total, 0.0), hi - lo

    def between(self, start: int, end: int) -> Iterator[Item]:
        """Items with start < time <= end, oldest first (for explanations only: O(window))."""
        lo = bisect.bisect_right(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        return iter(self.items[lo:hi])

    def step_times(self, start: int | None, end: int) -> list[int]:
        lo = 0 if start is None else bisect.bisect_right(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        return self.times[lo:hi]


def _bits(mask: int) -> Iterator[int]:
    bit = 0
    while mask:
        if mask & 1:
            yield bit
        mask >>= 1
        bit += 1


def _remove_time(times: list[int], time: int) -> None:
    at = bisect.bisect_left(times, time)
    if at < len(times) and times[at] == time:
        del times[at]


def decay(half_life_days: float, age_us: int) -> float:
    """The reference weight factor 0.5 ** (age in days / half-life), for tests."""
    return math.pow(0.5, (age_us / US_PER_DAY) / half_life_days)
