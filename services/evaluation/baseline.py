"""The baseline councils use today: a count of concerns, whatever they are about.

"Three or more concerns of any kind in 90 days" puts a location at Moderate; fewer puts it
back at none. No severity, no patterns, no peers, no history: a concern is a concern.

What counts as a concern (the event contract's types, `schemas/events.py`) is what a
council's quality or safeguarding team logs as one: a complaint (any), a safeguarding
concern (any), an NHS commissioner flag (any), a police flag (any), whistleblowing (any),
a contract monitoring finding at medium or high, a community care review's finding at
medium or high (the same team's own review of a placement), a regulator enforcement action
(any), an Inadequate rating, and a provider's notification of an abuse allegation or of
anything it links to safeguarding. Operational feeds a team does not count by hand are not concerns:
call monitoring's missed and late visits, NHS activity data (A&E, missed appointments),
workforce returns, the provider's own incident log and medication audits, other
notifications (deaths, DoLS, injuries not linked to safeguarding, manager absence, service
disruption) and ratings other than Inadequate.
Event types the contract gains later are not concerns until named here.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.events import TYPE_PREFIX
from schemas.risk import Level
from services.evaluation.changes import Change

RULE_ID = "count_of_concerns"


def short_type(event_type: str) -> str:
    return event_type.removeprefix(TYPE_PREFIX).rsplit(".", 1)[0]


def is_concern(event_type: str, data: Mapping[str, Any]) -> bool:
    """Whether a council would log this event as a concern (see the module's docstring)."""
    if event_type in ("complaint", "safeguarding_concern", "ccg_flag", "police_flag", "whistleblowing"):
        return True
    if event_type == "cqc_enforcement":
        return True
    if event_type in ("contract_monitoring", "care_review"):
        return data.get("finding_level") in ("medium", "high")
    if event_type == "cqc_rating":
        return data.get("overall") == "inadequate"
    if event_type == "statutory_notification":
        return data.get("category") == "abuse_allegation" or data.get("linked_to_safeguarding") is True
    return False


@dataclass
class CountBaseline:
    """Collects concerns as they arrive; `changes` then gives the levels the count sets."""

    threshold: int = 3
    window_days: float = 90.0
    concerns: dict[str, list[datetime]] = field(default_factory=dict)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def event(self, event: Mapping[str, Any]) -> None:
        """One CloudEvent (as a dict); a resent duplicate (same source and id) counts once."""
        if not is_concern(short_type(event["type"]), event["data"]):
            return
        key = (event["source"], event["id"])
        if key in self._seen:
            return
        self._seen.add(key)
        self.concerns.setdefault(event["subject"], []).append(_parse_time(event["time"]))

    def feed(self, events: Iterable[Mapping[str, Any]]) -> "CountBaseline":
        for event in events:
            self.event(event)
        return self

    def changes(self, until: datetime | None = None) -> list[Change]:
        """Level changes of every location, by event time: up at the concern that makes the
        count reach the threshold, down when the window slides past one of them."""
        window = timedelta(days=self.window_days)
        out: list[Change] = []
        for location_id in sorted(self.concerns):
            # +1 as a concern arrives, -1 as it leaves the window (t - 90 days, t]; all the
            # moves at one time are summed before the level is read, so a concern arriving
            # as another leaves does not flap.
            moves: dict[datetime, int] = {}
            for t in self.concerns[location_id]:
                moves[t] = moves.get(t, 0) + 1
                moves[t + window] = moves.get(t + window, 0) - 1
            count, level, seq = 0, Level.none, 0
            for t in sorted(moves):
                if until is not None and t > until:
                    break
                count += moves[t]
                new = Level.moderate if count >= self.threshold else Level.none
                if new != level:
                    seq += 1
                    rules = (RULE_ID,) if new > Level.none else ()
                    out.append(Change("location", location_id, t, seq, level, new, rules))
                    level = new
        out.sort(key=lambda c: (c.time, c.subject))
        return out


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
