"""What a detector produced: level changes, in one shape for the policy and the baseline."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.risk import Level, LevelChange

Scope = Literal["location", "organisation"]


@dataclass(frozen=True)
class Change:
    """One level change of a location or an organisation, at the event time it was decided."""

    scope: Scope
    subject: str
    time: datetime
    sequence: int
    old: Level
    new: Level
    # The rules that set the new level (those firing at it); empty for a fall to none.
    rules: tuple[str, ...] = ()

    @property
    def escalation(self) -> bool:
        return self.new > self.old


def from_level_change(change: LevelChange) -> Change:
    subject = change.location_id if change.scope == "location" else change.provider_id
    assert subject is not None
    return Change(
        scope=change.scope,
        subject=subject,
        time=change.decided_at,
        sequence=change.sequence,
        old=Level[change.old_level.value],
        new=Level[change.new_level.value],
        rules=tuple(r.rule_id for r in change.reasons if r.level == change.new_level),
    )
