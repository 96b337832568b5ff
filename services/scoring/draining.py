"""Faust's fetch loop, handing each message to the conductor without four tasks a message.

Faust's `Consumer._drain_messages` passes every fetched message to the conductor (which
decodes it and puts it in its stream's queue) as
`await self.wait_first(callback(message), self.suspend_flow.wait())`: four tasks a
message (the callback, the flow's event, the consumer's stopped and crashed events),
`asyncio.wait` over them, three cancellations, and event-loop turns for each. That race
matters only when the callback blocks (the flow suspended for a rebalance, a full
stream buffer): a rebalance must not wait for it. Almost always the callback finishes
without ever waiting. Here its coroutine is first run in place; only if it waits is the
rest of it run as a task raced against the suspended flow, exactly as Faust does.
The result of the race is unused, as in Faust: the message's read offset is recorded
either way, and a message abandoned by a rebalance is fetched again after the seek.

The loop is otherwise Faust 0.15's, line for line (the gap tracking, the commit every
`broker_commit_every` acks, the yield every 100 messages, the flags and the errors).
"""

import asyncio
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from mode import Service, ServiceT


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """The rest of a coroutine already run up to its first wait on `waiting_on`, for a
    task to drive: what the task sends or throws in goes on to the coroutine, what the
    coroutine waits on goes up to the task."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task: cancellation above all
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def deliver(consumer: Consumer, delivery: Awaitable[Any]) -> None:
    """Run the conductor's callback for one message: in place while it does not wait;
    if it does, the rest as a task that a suspended flow abandons (Faust's race)."""
    if not isinstance(delivery, Coroutine):  # not a coroutine to run step by step
        await consumer.wait_first(delivery, consumer.suspend_flow.wait())
        return
    coro = delivery
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return
    except BaseException:
        coro.close()
        raise
    rest = asyncio.ensure_future(cast(Awaitable[Any], _resume(coro, waiting_on)))
    try:
        await consumer.wait_first(rest, consumer.suspend_flow.wait())
    finally:
        if not rest.done():
            rest.cancel()


async def drain_messages(consumer: Consumer, fetcher: ServiceT) -> None:
    """Faust's `Consumer._drain_messages`, delivering each message with `deliver`."""
    callback = consumer.callback
    getmany = consumer.getmany
    consumer_should_stop = cast(Service, consumer)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    set_flag = consumer.diag.set_flag
    unset_flag = consumer.diag.unset_flag
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    yield_every = 100
    num_since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            # Faust sleeps here: getmany may return at once, again and again.
            await consumer.sleep(0)
            if not consumer.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await asyncio.sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await consumer._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and consumer._n_acked >= commit_every:
                            consumer._n_acked = 0
                            await consumer.commit()
                        await deliver(consumer, callback(message))
                        set_read_offset(tp, offset)
                    else:
                        consumer.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            consumer.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            consumer.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        consumer.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)
