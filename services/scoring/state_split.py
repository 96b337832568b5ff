"""A location's state stored in parts, so that a write costs what changed, not the whole
history: a header (clocks, histories, peer rates: ~1 KB) under the location's key, and
its kept events in chunks by week of event time under `<location>#<week>`.

An event usually lands in the newest week: a write is then the header and that week's
chunk. Chunks are not rewritten when events leave the retention or the cap; reading a
state applies the same cut-offs with the state's own clock, which gives exactly the
evidence the live state holds (both depend only on that clock, and on the events kept
before it). A chunk whose week no longer holds a kept event is deleted.

Chunks are never changed in place: a rewritten week goes under a new key
(`<location>#<week>.<write>`), the header that names it is written after it, and the
previous key is deleted after the header. A crash between two of those writes leaves
the previous header naming chunks that still exist (and at worst an orphan chunk), never
a header naming events it has not got.
"""

import bisect
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from services.scoring.engine import compiled
from services.scoring.model import LocationState, rebuild
from services.scoring.policy import Policy
from services.scoring.rules.base import History
from services.scoring.state_codec import StateFormatError
from services.scoring.timeline import US_PER_DAY, Item

HEADER = b"CSH\x01"
CHUNK = b"CSC\x01"
WEEK_US = 7 * US_PER_DAY

# What a stored chunk holds, as last written or read: how many events, and the first and
# the last (time, source, id). Events are only ever added, or dropped oldest first, so a
# week whose signature is unchanged holds the same events.
Signature = tuple[int, tuple[int, str, str], tuple[int, str, str]]


def _signature(items: list[Item], i: int, j: int) -> Signature:
    first, last = items[i], items[j - 1]
    return (j - i, (first.time, first.source, first.id), (last.time, last.source, last.id))


class _Header(msgspec.Struct, array_like=True):
    location_id: str
    policy_version: str
    clock: int | None
    watermark: int | None
    first_seen: int | None
    committed: History
    current: History
    change_seq: int
    tick_times: list[int]
    peer_rates: dict[str, tuple[str, float]]
    backfill: bool
    # Each stored week and the write that stored it (its chunk's key).
    weeks: list[tuple[int, int]]
    writes: int


_HEADER_ENCODER = msgspec.msgpack.Encoder()
_HEADER_DECODER = msgspec.msgpack.Decoder(_Header)
_CHUNK_DECODER = msgspec.msgpack.Decoder(list[Item])


def chunk_key(location_id: str, week: int, version: int) -> str:
    return f"{location_id}#{week}.{version}"


@dataclass(frozen=True)
class Stored:
    """What is stored for one location: each week's signature and the write that stored
    it, and how many writes there have been."""

    weeks: dict[int, tuple[Signature, int]]
    writes: int


@dataclass
class Written:
    header: bytes
    # New chunks, to store before the header; keys to delete after it.
    chunks: dict[str, bytes]
    obsolete: list[str]
    stored: Stored


def _weeks(items: list[Item], times: list[int]) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    i, n = 0, len(times)
    while i < n:
        week = times[i] // WEEK_US
        j = bisect.bisect_left(times, (week + 1) * WEEK_US, i)
        out[week] = (i, j)
        i = j
    return out


def write(state: LocationState, previous: Stored | None) -> Written:
    """The parts to store for this state, given what is stored (None: nothing known, so
    every week is written)."""
    items = state.timeline.items
    weeks = _weeks(items, state.timeline.times)
    writes = (previous.writes if previous is not None else 0) + 1
    stored: dict[int, tuple[Signature, int]] = {}
    chunks: dict[str, bytes] = {}
    obsolete: list[str] = []
    before = previous.weeks if previous is not None else {}
    for week, (i, j) in weeks.items():
        signature = _signature(items, i, j)
        old = before.get(week)
        if old is not None and old[0] == signature:
            stored[week] = old
            continue
        stored[week] = (signature, writes)
        chunks[chunk_key(state.location_id, week, writes)] = CHUNK + zlib.compress(
            msgspec.msgpack.encode(items[i:j]), 1
        )
        if old is not None:
            obsolete.append(chunk_key(state.location_id, week, old[1]))
    obsolete += [chunk_key(state.location_id, w, v) for w, (_, v) in before.items() if w not in weeks]
    header = _Header(
        location_id=state.location_id,
        policy_version=state.policy_version,
        clock=state.clock_us,
        watermark=state.watermark_us,
        first_seen=state.first_seen_us,
        committed=state.committed,
        current=state.current,
        change_seq=state.change_seq,
        tick_times=state.tick_times,
        peer_rates=state.peer_rates,
        backfill=state.backfill,
        weeks=sorted((w, v) for w, (_, v) in stored.items()),
        writes=writes,
    )
    return Written(HEADER + _HEADER_ENCODER.encode(header), chunks, obsolete, Stored(stored, writes))


def is_header(raw: bytes) -> bool:
    return raw.startswith(HEADER)


def read(raw: bytes, chunk: Callable[[str], bytes | None], policy: Policy) -> tuple[LocationState, Stored]:
    """The state whose header these bytes are, its events read from `chunk` by key, and
    what is stored for it."""
    try:
        header = _HEADER_DECODER.decode(raw[len(HEADER) :])
    except msgspec.DecodeError as exc:
        raise StateFormatError(f"a damaged location state header: {exc}") from exc
    items: list[Item] = []
    weeks: dict[int, tuple[Signature, int]] = {}
    for week, version in header.weeks:
        key = chunk_key(header.location_id, week, version)
        stored = chunk(key)
        if not stored or not stored.startswith(CHUNK):
            raise StateFormatError(f"the events of {key} are missing or not a chunk")
        try:
            part = _CHUNK_DECODER.decode(zlib.decompress(stored[len(CHUNK) :]))
        except (msgspec.DecodeError, zlib.error) as exc:
            raise StateFormatError(f"a damaged chunk {key}: {exc}") from exc
        if part:
            weeks[week] = (_signature(part, 0, len(part)), version)
        items.extend(part)
    c = compiled(policy)
    same = header.policy_version == policy.version
    timeline = c.timeline()
    if same:
        for item in items:
            timeline.add(item)
    else:
        timeline = rebuild(c, items)
    if header.clock is not None:
        # The live state dropped these with the same clock: chunks keep them until their
        # week is rewritten or deleted.
        timeline.drop_before(header.clock - c.retention_us, header.clock - c.rating_retention_us)
        timeline.keep_last(policy.max_evidence_per_location)
    state = LocationState(
        location_id=header.location_id,
        policy_version=policy.version if not same else header.policy_version,
        timeline=timeline,
        clock_us=header.clock,
        watermark_us=header.watermark,
        first_seen_us=header.first_seen,
        committed=header.committed,
        current=header.current,
        change_seq=header.change_seq,
        tick_times=header.tick_times,
        peer_rates=header.peer_rates,
        backfill=header.backfill,
    )
    return state, Stored(weeks, header.writes)
