"""A location's state as bytes: a typed, versioned binary encoding (msgspec MessagePack,
compressed with zlib at its fastest level) of what the engine needs, behind a magic
prefix that names the format.

Compressed because a year's evidence repeats its sources, types and fact names hundreds
of times: a median state of ~23 KB of MessagePack is ~5 KB compressed, for ~0.1 ms per
write (the table and its changelog carry every write).

The indexes of the timeline are not stored: they are rebuilt from the items on decoding,
so the stored form holds each event once. A state in the previous engine's JSON form
(pydantic, before issue 11) is migrated when read; an unknown format is refused, never
misread.
"""

import zlib
from dataclasses import dataclass

import msgspec
from pydantic import ValidationError

from schemas.risk import Level
from services.scoring.engine import compiled
from services.scoring.model import LocationState, rebuild
from services.scoring.policy import Policy
from services.scoring.rules.base import History, Hit
from services.scoring.timeline import Item, to_us

MAGIC = b"CSL\x02"
_UNCOMPRESSED = b"CSL\x01"  # the first binary form, without compression


class StateFormatError(ValueError):
    """Stored bytes that are not a location state this version can read."""


class _Stored(msgspec.Struct, array_like=True):
    location_id: str
    policy_version: str
    clock: int | None
    watermark: int | None
    first_seen: int | None
    items: list[Item]
    committed: History
    current: History
    change_seq: int
    tick_times: list[int]
    peer_rates: dict[str, tuple[str, float]]
    backfill: bool


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Stored)


@dataclass(frozen=True, slots=True)
class Detached:
    """A state's stored form taken apart from the live state: the worker's model changes a
    timeline and its lists in place, so what is to be encoded later is copied first."""

    stored: _Stored


def detach(state: LocationState) -> Detached:
    """The state as it is now, for `encode_detached` later: copies its mutable lists (a
    few microseconds), not its items, which are immutable."""
    return Detached(
        _Stored(
            location_id=state.location_id,
            policy_version=state.policy_version,
            clock=state.clock_us,
            watermark=state.watermark_us,
            first_seen=state.first_seen_us,
            items=list(state.timeline.items),
            committed=state.committed,
            current=state.current,
            change_seq=state.change_seq,
            tick_times=list(state.tick_times),
            peer_rates=dict(state.peer_rates),
            backfill=state.backfill,
        )
    )


def encode_detached(detached: Detached) -> bytes:
    return MAGIC + zlib.compress(_ENCODER.encode(detached.stored), 1)


def encode_state(state: LocationState) -> bytes:
    return encode_detached(detach(state))


def decode_state(raw: bytes, policy: Policy) -> LocationState:
    """The state in these bytes, its timeline indexed for this policy (evidence kept under
    another policy version is classified again, as `assess` would)."""
    if raw.startswith((MAGIC, _UNCOMPRESSED)):
        try:
            body = zlib.decompress(raw[len(MAGIC) :]) if raw.startswith(MAGIC) else raw[len(MAGIC) :]
            stored = _DECODER.decode(body)
        except (msgspec.DecodeError, zlib.error) as exc:
            raise StateFormatError(f"a damaged location state: {exc}") from exc
        return _from_stored(stored, policy)
    if raw.startswith(b"{"):
        return _migrate_json(raw, policy)
    raise StateFormatError(f"not a location state format this version reads (starts {raw[:4]!r})")


def _from_stored(stored: _Stored, policy: Policy) -> LocationState:
    c = compiled(policy)
    same = stored.policy_version == policy.version
    timeline = c.timeline()
    if same:
        for item in stored.items:
            timeline.add(item)
    else:
        timeline = rebuild(c, stored.items)
    return LocationState(
        location_id=stored.location_id,
        policy_version=policy.version if not same else stored.policy_version,
        timeline=timeline,
        clock_us=stored.clock,
        watermark_us=stored.watermark,
        first_seen_us=stored.first_seen,
        committed=stored.committed,
        current=stored.current,
        change_seq=stored.change_seq,
        tick_times=stored.tick_times,
        peer_rates=stored.peer_rates,
        backfill=stored.backfill,
    )


def _migrate_json(raw: bytes, policy: Policy) -> LocationState:
    """The previous engine's JSON state: its evidence classified again, its histories
    kept, its current reasons as named evidence (the same rules and events)."""
    from services.scoring import oracle  # only old states need the old model's types

    try:
        old = oracle.LocationState.model_validate_json(raw)
    except ValidationError as exc:
        raise StateFormatError(f"an old (JSON) location state that does not validate: {exc}") from exc
    c = compiled(policy)
    items = [
        Item(
            to_us(e.time),
            e.source,
            e.id,
            e.type,
            e.facts,
            bytes.fromhex(e.digest[:16]) if e.digest else b"",
            0,
            0.0,
            False,
        )
        for e in old.evidence
    ]
    timeline = rebuild(c, items)

    def history(h: oracle.History) -> History:
        hits = tuple(
            Hit(
                r.rule_id,
                r.family,
                Level[r.level],
                r.description,
                r.measure,
                "named",
                named=tuple((ref.source, ref.event_id) for ref in r.evidence),
            )
            for r in h.reasons
        )
        return History(
            level=h.level,
            since=to_us(h.since) if h.since is not None else None,
            active=h.active,
            accumulation_band=h.accumulation_band,
            triangulation_level=h.triangulation_level,
            at=to_us(h.at) if h.at is not None else None,
            score=h.score,
            hits=hits,
        )

    return LocationState(
        location_id=old.location_id,
        policy_version=policy.version,
        timeline=timeline,
        clock_us=to_us(old.clock) if old.clock is not None else None,
        watermark_us=to_us(old.watermark) if old.watermark is not None else None,
        first_seen_us=to_us(old.first_seen) if old.first_seen is not None else None,
        committed=history(old.committed),
        current=history(old.current),
        change_seq=old.change_seq,
        tick_times=[to_us(t) for t in old.tick_times],
        peer_rates=dict(old.peer_rates),
        backfill=old.backfill,
    )
