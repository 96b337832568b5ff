"""The fetch loop's delivery of one message (services/scoring/draining.py): in place while
the conductor's callback does not wait, raced against a suspended flow when it does."""

import asyncio
from typing import Any, cast

import pytest
from faust.transport.consumer import Consumer
from mode import Service

from services.scoring.draining import deliver


class FlowConsumer(Service):
    """What `deliver` uses of Faust's consumer: `wait_first` (mode's) and `suspend_flow`."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


def consumer() -> Consumer:
    return cast(Consumer, FlowConsumer())


async def test_a_callback_that_never_waits_runs_in_place_without_a_task() -> None:
    done: list[str] = []
    tasks_before = len(asyncio.all_tasks())

    async def callback() -> None:
        done.append("delivered")
        assert len(asyncio.all_tasks()) == tasks_before  # no task made for it

    await deliver(consumer(), callback())
    assert done == ["delivered"]


async def test_a_callback_that_waits_is_finished_before_deliver_returns() -> None:
    gate = asyncio.Event()
    steps: list[str] = []

    async def callback() -> str:
        steps.append("before")
        await gate.wait()
        await asyncio.sleep(0)  # a bare yield after the first wait goes through too
        steps.append("after")
        return "ignored"

    delivering = asyncio.ensure_future(deliver(consumer(), callback()))
    await asyncio.sleep(0.01)
    assert steps == ["before"] and not delivering.done()
    gate.set()
    await asyncio.wait_for(delivering, 1)
    assert steps == ["before", "after"]


async def test_a_suspended_flow_abandons_a_waiting_callback_as_faust_does() -> None:
    flow = consumer()
    outcome: list[str] = []

    async def callback() -> None:
        try:
            await asyncio.Event().wait()  # a full buffer, or the flow control held
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    delivering = asyncio.ensure_future(deliver(flow, callback()))
    await asyncio.sleep(0.01)
    flow.suspend_flow.set()
    await asyncio.wait_for(delivering, 1)
    await asyncio.sleep(0)
    assert outcome == ["cancelled"]


@pytest.mark.parametrize("waits_first", [False, True], ids=["in place", "after a wait"])
async def test_a_failing_callback_fails_the_delivery(waits_first: bool) -> None:
    async def callback() -> None:
        if waits_first:
            await asyncio.sleep(0.001)
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        await deliver(consumer(), callback())


async def test_an_awaitable_that_is_no_coroutine_goes_through_faust_s_race() -> None:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, future.set_result, None)
    await asyncio.wait_for(deliver(consumer(), future), 1)
    assert future.done()
