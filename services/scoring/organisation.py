"""Provider organisation roll-up: several locations of one provider in trouble at once.

Pure, like the location model: it takes the organisation's state and one location-level
change and returns the new state and, if the organisation's level moved, its change.
"""

from datetime import datetime

from pydantic import BaseModel

from schemas.risk import Level, LevelChange, LevelName, RuleFiring
from services.scoring.model import change_id
from services.scoring.policy import Policy

DAY_SECONDS = 86400.0


class OrganisationState(BaseModel):
    provider_id: str
    # Each location's latest level and the sequence of the change that set it.
    locations: dict[str, tuple[Level, int]] = {}
    level: Level = Level.none
    since: datetime | None = None
    change_seq: int = 0


def roll_up(
    state: OrganisationState | None, change: LevelChange, policy: Policy
) -> tuple[OrganisationState, LevelChange | None]:
    rule = policy.organisation
    assert change.provider_id is not None and change.location_id is not None
    state = state or OrganisationState(provider_id=change.provider_id)
    known = state.locations.get(change.location_id)
    if known is not None and known[1] >= change.sequence:
        return state, None  # a redelivered or out-of-date change
    locations = {**state.locations, change.location_id: (Level[change.new_level], change.sequence)}
    state = state.model_copy(update={"locations": locations})
    if rule is None:
        return state, None
    threshold = Level[rule.at_or_above]
    troubled = sorted(loc for loc, (level, _) in locations.items() if level >= threshold)
    target = Level[rule.level] if len(troubled) >= rule.min_locations else Level.none
    t = change.decided_at
    level, since = state.level, state.since
    if target > level or (
        target < level and (since is None or (t - since).total_seconds() / DAY_SECONDS >= policy.min_days_at_level)
    ):
        level, since = target, t
    if level == state.level:
        return state.model_copy(update={"since": since}), None
    seq = state.change_seq + 1
    spec = policy.spec(level)
    firing = RuleFiring(
        rule_id=rule.id,
        family="organisation",
        level=LevelName(target.name),
        description=(
            f"{rule.description}: {len(troubled)} location(s) at {threshold.label} or above "
            f"({', '.join(troubled) or 'none'}); the threshold is {rule.min_locations}"
        ),
        measure=len(troubled),
    )
    org_change = LevelChange(
        change_id=change_id(f"org:{state.provider_id}", policy.version, seq),
        sequence=seq,
        scope="organisation",
        provider_id=state.provider_id,
        locations=troubled,
        old_level=LevelName(state.level.name),
        new_level=LevelName(level.name),
        direction="escalation" if level > state.level else "de-escalation",
        score=float(len(troubled)),
        reasons=[firing],
        actions=list(spec.actions) if spec is not None else [],
        meaning=spec.meaning if spec is not None else "No current concern under the policy's thresholds.",
        policy_version=policy.version,
        decided_at=t,
        # Moved by a location's change about the past (a backfill): about the past too.
        backfill=change.backfill,
    )
    return state.model_copy(update={"level": level, "since": since, "change_seq": seq}), org_change
