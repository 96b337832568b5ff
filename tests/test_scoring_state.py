"""A location's stored state (format, migration, refusal of what it cannot read), the
working copy written back at commit (`StateCache`), and the tick plan (`next_due`, `TickSchedule`)."""

import pytest

from schemas.risk import Level
from services.scoring.model import LocationState, next_due, tick
from services.scoring.state_cache import StateCache
from services.scoring.state_codec import (
    MAGIC,
    Detached,
    StateFormatError,
    decode_state,
    detach,
    encode_detached,
    encode_state,
)
from services.scoring.ticks import TickSchedule
from tests.test_scoring_model import AGENCY, HOME, MISSED, POLICY, SERIOUS, day, ev, level, run


def _state() -> LocationState:
    state, _ = run([ev("missed_visit", day(d), MISSED) for d in (0, 1, 2, 3)], AGENCY)
    return state


def test_a_state_is_stored_compressed_and_read_back_whole() -> None:
    state = _state()
    raw = encode_state(state)
    assert raw.startswith(MAGIC)
    back = decode_state(raw, POLICY)
    assert back.current == state.current and back.committed == state.committed
    assert back.timeline.items == state.timeline.items and back.clock == state.clock
    assert back.reasons() == state.reasons()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\x00\x01garbage", "not a location state format"),
        (MAGIC + b"not zlib", "damaged"),
        (b'{"location_id": 3}', "does not validate"),
    ],
)
def test_bytes_that_are_not_a_state_are_refused_never_misread(raw: bytes, says: str) -> None:
    with pytest.raises(StateFormatError, match=says):
        decode_state(raw, POLICY)


class _Counting:
    def __init__(self) -> None:
        self.encoded = 0
        self.decoded = 0

    def encode(self, detached: Detached) -> bytes:
        self.encoded += 1
        return encode_detached(detached)

    def decode(self, raw: bytes) -> LocationState:
        self.decoded += 1
        return decode_state(raw, POLICY)

    def cache(self, size: int = 10) -> StateCache[Detached]:
        return StateCache(self.decode, detach, self.encode, size=size)


def write_back(cache: StateCache[Detached]) -> list[tuple[str, bytes]]:
    """What the worker's commit does: take the changed states, encode, write, mark written."""
    done = [(unwritten, cache.encode(unwritten)) for unwritten in cache.unwritten()]
    cache.written(done)
    return [(unwritten.location_id, raw) for unwritten, raw in done]


def test_a_state_changed_many_times_between_commits_is_encoded_and_written_once() -> None:
    counting = _Counting()
    cache = counting.cache()
    state = _state()
    for _ in range(50):
        cache.changed("a", state)
    assert counting.encoded == 0 and cache.dirty == 1
    written = write_back(cache)
    assert [key for key, _ in written] == ["a"] and counting.encoded == 1
    assert decode_state(written[0][1], POLICY).reasons() == state.reasons()
    assert write_back(cache) == [] and cache.dirty == 0  # clean until it changes again


def test_a_state_changed_while_its_write_back_is_encoded_is_written_again_next_time() -> None:
    # The commit takes the changed states, then the agent goes on while they are encoded:
    # what is encoded is the state as taken, and a newer one stays to be written.
    counting = _Counting()
    cache = counting.cache()
    before, _ = run([ev("missed_visit", day(d), MISSED) for d in (0, 1)], AGENCY)
    after, _ = run([ev("missed_visit", day(d), MISSED) for d in (0, 1, 2, 3)], AGENCY)
    cache.changed("a", before)
    cache.changed("b", before)
    taken = cache.unwritten()
    cache.changed("a", after)
    done = [(unwritten, cache.encode(unwritten)) for unwritten in taken]
    cache.written(done)

    assert decode_state(done[0][1], POLICY).timeline.items == before.timeline.items
    assert cache.dirty == 1
    assert [(key, decode_state(raw, POLICY).timeline.items) for key, raw in write_back(cache)] == [
        ("a", after.timeline.items)
    ]


def test_a_taken_state_is_a_copy_the_model_cannot_change_in_place() -> None:
    # The worker's model appends to a location's timeline in place (`consume=True`).
    state = _state()
    detached = detach(state)
    expected = encode_detached(detached)
    state.timeline.items.append(state.timeline.items[-1])
    state.tick_times.append(1)
    state.peer_rates["rule"] = ("care_home", 1.0)
    assert encode_detached(detached) == expected


def test_a_cached_location_is_not_read_from_the_table_again() -> None:
    counting = _Counting()
    cache = counting.cache()
    raw = encode_state(_state())
    reads: list[str] = []

    def load() -> bytes:
        reads.append("a")
        return raw

    first = cache.get("a", load)
    assert first is not None and cache.get("a", load) is first
    assert reads == ["a"] and counting.decoded == 1
    assert cache.get("b", lambda: None) is None  # no state yet


def test_a_changed_state_is_never_evicted_before_it_is_written_back() -> None:
    cache = _Counting().cache(size=2)
    state = _state()
    raw = encode_state(state)
    cache.changed("a", state)
    cache.changed("b", state)
    cache.changed("c", state)  # over the bound, but all three are the only copies
    assert cache.dirty == 3 and sorted(cache.locations()) == ["a", "b", "c"]
    taken = cache.unwritten()
    cache.read("d", raw)  # while they are being written: still the only copies
    assert {"a", "b", "c"} <= set(cache.locations())
    cache.written((unwritten, cache.encode(unwritten)) for unwritten in taken)
    assert len(cache.locations()) == 2  # clean now: the bound applies again
    cache.read("e", raw)
    assert len(cache.locations()) == 2 and "e" in cache.locations()


def test_a_redelivered_event_writes_the_unchanged_state_again_as_stored() -> None:
    counting = _Counting()
    cache = counting.cache()
    raw = encode_state(_state())
    cache.read("a", raw)
    cache.rewrite("a")
    cache.rewrite("z")  # nothing held for it: nothing to write
    assert write_back(cache) == [("a", raw)] and counting.encoded == 0


def test_a_revoked_partitions_states_are_dropped_changed_or_not() -> None:
    counting = _Counting()
    cache = counting.cache()
    raw = encode_state(_state())
    cache.changed("a", _state())
    cache.read("b", raw)
    cache.drop(["a", "b"])
    assert cache.dirty == 0 and cache.locations() == [] and write_back(cache) == []
    cache.read("b", raw)
    assert counting.decoded == 2  # read afresh from the table


def test_a_raised_location_is_due_when_its_rule_lets_go_and_ticked_then_it_falls() -> None:
    state, _ = run([ev("safeguarding_concern", day(0), SERIOUS)], HOME)
    assert level(state) is Level.major
    hold = next(t.hold_days for t in POLICY.triggers if t.id == "serious_abuse_or_neglect")
    # Ticked at each planned time: the minimum time at the level runs out first (nothing
    # else has changed), then the trigger's hold, when it falls.
    plans = []
    while (due := next_due(state, HOME, POLICY)) is not None and len(plans) < 5:
        plans.append(due)
        outcome = tick(state, HOME, due, POLICY)
        state = outcome.state
        if outcome.change is not None:
            break
    assert plans == [day(POLICY.min_days_at_level), day(hold)]
    assert outcome.change is not None and outcome.change.decided_at == day(hold) and level(state) < Level.major
    quiet, _ = run([ev("missed_visit", day(0), MISSED)], HOME)
    assert level(quiet) is Level.none and next_due(quiet, HOME, POLICY) is None


def test_the_schedule_gives_each_location_its_latest_plan_once_its_partition_clock_passes_it() -> None:
    schedule = TickSchedule()
    schedule.plan(0, "a", day(5))
    schedule.plan(0, "b", day(3))
    schedule.plan(0, "a", day(4))  # replaces day 5
    schedule.plan(1, "c", day(1))
    schedule.advance(0, day(3))
    assert schedule.next_due(0) == ("b", day(3)) and schedule.next_due(0) is None
    schedule.advance(0, day(2))  # a clock never goes back
    schedule.advance(0, day(10))
    assert schedule.next_due(0) == ("a", day(4)) and schedule.next_due(0) is None  # day 5 was replaced
    schedule.plan(0, "a", None)
    schedule.forget(1)
    assert schedule.clock(1) is None  # read again from the partition-clocks table if it comes back
    schedule.advance(1, day(10))
    assert schedule.next_due(1) is None and schedule.planned("c") is None
    schedule.forget(0)
    assert schedule.clock(0) is None
