"""Time signals: records on the event topic that say "event time has reached T here".

The scorer's sense of time is the event time of each partition. A partition that no
event reaches would keep its levels for ever; a scheduler publishes one of these to every
partition at a wall-clock interval, and the scorer lets time pass there as if an event of
that time had arrived. Being records in the topic, a replay meets them where they were.

They are keyed by TIME_SIGNAL_KEY, which is never a location ID (location IDs are
`1-` and digits), so a time signal is never taken for an event, dead-lettered as one, or
re-routed by its key: it is sent to a chosen partition.
"""

from typing import Literal

from pydantic import AwareDatetime

from schemas.events import Contract

TIME_SIGNAL_KEY = b"caresignal.time-signal"


class TimeSignal(Contract):
    kind: Literal["caresignal.time-signal"] = "caresignal.time-signal"
    schema_version: Literal[1] = 1
    # Wall-clock time when the scheduler sent it: the partition's event time is at least this.
    time: AwareDatetime


def is_time_signal(key: bytes | None) -> bool:
    return key == TIME_SIGNAL_KEY
