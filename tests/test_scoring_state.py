"""A location's stored state (format, migration, refusal of what it cannot read), the
decoded-state cache beside the table, and the tick plan (`next_due`, `TickSchedule`)."""

import pytest

from schemas.risk import Level
from services.scoring.model import LocationState, assess, next_due, tick
from services.scoring.state_cache import StateCache
from services.scoring.state_codec import MAGIC, StateFormatError, decode_state, encode_state
from services.scoring.state_split import Stored, Written
from services.scoring.state_split import read as read_state
from services.scoring.ticks import TickSchedule
from tests.test_scoring_model import AGENCY, HOME, LOC, MISSED, POLICY, SERIOUS, day, ev, level, run


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


class Tables:
    """The worker's two tables, as dicts, written in its order."""

    def __init__(self) -> None:
        self.states: dict[str, bytes] = {}
        self.evidence: dict[str, bytes] = {}
        self.reads = 0

    def decode(self, raw: bytes) -> tuple[LocationState, Stored | None]:
        self.reads += 1
        return read_state(raw, self.evidence.get, POLICY)

    def store(self, location_id: str, written: Written) -> None:
        self.evidence.update(written.chunks)
        self.states[location_id] = written.header
        for key in written.obsolete:
            del self.evidence[key]


def test_a_write_stores_the_header_and_only_the_weeks_that_changed() -> None:
    tables = Tables()
    cache = StateCache(tables.decode, size=10)
    events = [ev("missed_visit", day(d), MISSED) for d in range(0, 60, 2)]
    state, _ = run(events[:-1], AGENCY)
    first = cache.write(LOC, state)
    tables.store(LOC, first)
    assert len(first.chunks) == 9 and not first.obsolete  # 29 events over 9 weeks
    taken = cache.take(LOC, tables.states[LOC])
    assert taken is state and tables.reads == 0
    state = assess(taken, AGENCY, events[-1], POLICY, consume=True).state
    second = cache.write(LOC, state)
    tables.store(LOC, second)
    # The newest week only, under a new key; its previous chunk deleted after the header.
    assert len(second.chunks) == 1 and len(second.obsolete) == 1 and len(tables.evidence) == 9
    fresh = StateCache(tables.decode, size=10).read(LOC, tables.states[LOC])
    assert fresh is not None and fresh.timeline.items == state.timeline.items and fresh.current == state.current
    assert fresh.reasons() == state.reasons()


def test_a_crash_between_the_writes_leaves_the_previous_state_whole() -> None:
    tables = Tables()
    cache = StateCache(tables.decode, size=10)
    state, _ = run([ev("missed_visit", day(d), MISSED) for d in range(0, 20, 2)], AGENCY)
    tables.store(LOC, cache.write(LOC, state))
    before = tables.states[LOC]
    later = assess(state, AGENCY, ev("missed_visit", day(21), MISSED), POLICY).state
    written = cache.write(LOC, later)
    tables.evidence.update(written.chunks)  # ... and the worker stops before the header
    back, _ = read_state(before, tables.evidence.get, POLICY)
    assert back.timeline.items == state.timeline.items and back.clock == state.clock


def test_events_past_the_retention_are_dropped_on_reading_as_the_live_state_dropped_them() -> None:
    tables = Tables()
    cache = StateCache(tables.decode, size=10)
    state, _ = run([ev("missed_visit", day(d), MISSED) for d in range(0, 500, 7)], AGENCY)
    tables.store(LOC, cache.write(LOC, state))
    for d in range(500, 560, 3):  # old weeks leave the retention; their chunks stay a while
        state = assess(
            cache.take(LOC, tables.states[LOC]), AGENCY, ev("missed_visit", day(d), MISSED), POLICY, consume=True
        ).state
        tables.store(LOC, cache.write(LOC, state))
    back, _ = read_state(tables.states[LOC], tables.evidence.get, POLICY)
    assert back.timeline.items == state.timeline.items and back.timeline.keys == state.timeline.keys


def test_the_cache_serves_a_state_only_while_the_table_holds_its_header() -> None:
    tables = Tables()
    cache = StateCache(tables.decode, size=2)
    tables.store("a", cache.write("a", _state()))
    raw = tables.states["a"]
    assert cache.read("a", raw) is cache.read("a", raw) and tables.reads == 0
    other_state = run([ev("missed_visit", day(9), MISSED)], AGENCY)[0]
    tables.store("a", StateCache(tables.decode, size=1).write("a", other_state))
    cache.read("a", tables.states["a"])  # the table moved on (a rebalance, a changelog recovery)
    assert tables.reads == 1
    tables.store("b", cache.write("b", _state()))
    tables.store("c", cache.write("c", _state()))
    assert cache.read("a", tables.states["a"]) is not None and tables.reads == 2  # "a" was evicted


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
    schedule.advance(1, day(10))
    assert schedule.next_due(1) is None and schedule.planned("c") is None
