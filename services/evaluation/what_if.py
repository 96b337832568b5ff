"""One history through two policies at once: the scorer's pure replay
(`services.evaluation.replay.Replay`), one per policy, fed the same events in the same
order, then compared (`services.evaluation.policy_compare`). No I/O: the shell reads
the history and writes the report.

Both replays see each event as it comes, so a history is read (and parsed) once, and a
Kafka topic need not be held twice.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas.directory import Location
from schemas.events import Event
from services.evaluation.policy_compare import Comparison, compare
from services.evaluation.replay import EPOCH, Replay, organisation_changes
from services.scoring.policy import Policy


@dataclass
class WhatIf:
    comparison: Comparison
    events: int
    # The replay's status counts (applied, duplicate, late, expired...) under each policy.
    statuses_old: dict[str, int]
    statuses_new: dict[str, int]


def what_if(
    locations: Mapping[str, Location],
    events: Iterable[Event],
    old: Policy,
    new: Policy,
    *,
    until: datetime | None = None,
) -> WhatIf:
    """Every level change each policy would make for these events (in arrival order),
    compared over the history's period: its first event time to `until` (default: its
    latest event time; levels then fall or hold as the emulated clock runs on to it)."""
    engines = (Replay(locations, old), Replay(locations, new))
    first: datetime | None = None
    last: datetime | None = None
    subjects: set[str] = set()
    count = 0
    for event in events:
        count += 1
        subjects.add(event.subject)
        first = event.time if first is None or event.time < first else first
        last = event.time if last is None or event.time > last else last
        for engine in engines:
            engine.event(event)
    if first is None or last is None:
        first = last = until or EPOCH  # no history: an empty period
    end = max(until or last, last)
    for engine in engines:
        engine.run_clock_until(end)
    changes = [
        engine.result.changes + organisation_changes(engine.level_changes, policy)
        for engine, policy in zip(engines, (old, new), strict=True)
    ]
    comparison = compare(changes[0], changes[1], start=first, end=end, locations=set(locations) | subjects)
    return WhatIf(comparison, count, dict(engines[0].result.statuses), dict(engines[1].result.statuses))
