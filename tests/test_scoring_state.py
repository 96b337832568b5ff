"""A location's stored state (format, migration, refusal of what it cannot read), the
decoded-state cache beside the table, and the tick plan (`next_due`, `TickSchedule`)."""

import pytest

from schemas.risk import Level
from services.scoring.model import LocationState, next_due, tick
from services.scoring.state_cache import StateCache
from services.scoring.state_codec import MAGIC, StateFormatError, decode_state, encode_state
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


def test_the_cache_serves_a_state_only_while_the_table_holds_its_bytes() -> None:
    decoded: list[bytes] = []

    def decode(raw: bytes) -> LocationState:
        decoded.append(raw)
        return decode_state(raw, POLICY)

    cache = StateCache(decode, encode_state, size=2)
    raw = cache.write("a", _state())
    assert cache.read("a", raw) is cache.read("a", raw) and decoded == []
    other = encode_state(run([ev("missed_visit", day(9), MISSED)], AGENCY)[0])
    cache.read("a", other)  # the table moved on (a rebalance, a changelog recovery)
    assert decoded == [other]
    taken = cache.take("a", other)
    assert taken is not None and cache.read("a", other) is not taken  # taken: decoded again
    cache.write("b", _state())
    cache.write("c", _state())
    assert len(decoded) == 2 and cache.read("a", other) is not None and len(decoded) == 3  # "a" was evicted


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
