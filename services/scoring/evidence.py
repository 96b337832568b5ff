"""Evidence: what the risk model keeps of each event, and how policy conditions match it.

Only the event's identity, type, time and data fields are kept, never a person
reference: rules count and weigh events, they never need to know about whom.
"""

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from schemas.events import Event
from services.scoring.policy import Condition, Pattern, Peer, Policy, Range, Rise, Trigger
from services.scoring.rules.closed_culture import series_tags
from services.scoring.rules.triggers import corroboration_tag


class Evidence(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    source: str
    type: str
    time: datetime
    facts: dict[str, Any]
    # Rule ids whose conditions this event meets, worked out once when it arrives.
    tags: frozenset[str] = frozenset()
    weight: float = 0.0
    concern: bool = False
    # What the event said, to tell a redelivery (same digest) from a reused id (another);
    # empty for evidence kept before digests were.
    digest: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)


def matches(condition: Condition, event_type: str, facts: dict[str, Any]) -> bool:
    if condition.type != event_type:
        return False
    for name, wanted in condition.constraints.items():
        value = facts.get(name)
        if isinstance(wanted, Range):
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            if wanted.gte is not None and value < wanted.gte:
                return False
            if wanted.lte is not None and value > wanted.lte:
                return False
        elif isinstance(value, list):
            # A list field (key-question tags) matches when it holds any wanted value.
            if not set(value) & set(wanted if isinstance(wanted, list) else [wanted]):
                return False
        elif isinstance(wanted, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def any_match(conditions: list[Condition], event_type: str, facts: dict[str, Any]) -> bool:
    return any(matches(c, event_type, facts) for c in conditions)


def classify(policy: Policy, event_type: str, facts: dict[str, Any]) -> tuple[frozenset[str], float, bool]:
    """Tags, accumulation weight and whether it is a triangulation concern."""
    rules: list[Trigger | Pattern | Rise | Peer] = [*policy.triggers, *policy.patterns, *policy.rises, *policy.peers]
    tags = {rule.id for rule in rules if any_match(rule.when, event_type, facts)}
    # Tags that are not rule ids (ids have no colon): what corroborates a flag, and the
    # closed-culture rules' two series.
    for trigger in policy.triggers:
        if trigger.corroborate is not None and any_match(trigger.corroborate.by, event_type, facts):
            tags.add(corroboration_tag(trigger.id))
    for rule in policy.closed_culture:
        voices, reports = series_tags(rule)
        if any_match(rule.voices.when, event_type, facts):
            tags.add(voices)
        if any_match(rule.reports.when, event_type, facts):
            tags.add(reports)
    weight = 0.0
    if policy.accumulation is not None:
        weight = max(
            (w.weight for w in policy.accumulation.weights if any_match(w.when, event_type, facts)), default=0.0
        )
    concern = policy.triangulation is not None and any_match(policy.triangulation.concerns, event_type, facts)
    return frozenset(tags), weight, concern


# What json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# builds for every call: the same encoder, made once (the digests must never change).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(event: Event) -> str:
    """SHA-256 of the event's canonical JSON without its person reference.

    The person reference is left out so that the state never holds anything derived from
    it (a pseudonym's hash could be matched by trying candidates); a redelivery that
    differs only there counts as the same event.
    """
    content = event.model_dump(mode="json", exclude={"data": {"person_ref"}})
    return hashlib.sha256(_CANONICAL.encode(content).encode()).hexdigest()


def from_event(policy: Policy, event: Event) -> Evidence:
    facts = event.data.model_dump(mode="json", exclude={"person_ref"}, exclude_none=True)
    short = event.short_type
    tags, weight, concern = classify(policy, short, facts)
    return Evidence(
        id=event.id,
        source=event.source,
        type=short,
        time=event.time,
        facts=facts,
        tags=tags,
        weight=weight,
        concern=concern,
        digest=content_digest(event),
    )


def retag(policy: Policy, evidence: Evidence) -> Evidence:
    tags, weight, concern = classify(policy, evidence.type, evidence.facts)
    return evidence.model_copy(update={"tags": tags, "weight": weight, "concern": concern})
