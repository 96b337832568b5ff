"""`caresignal policy explain`: a location's risk view (GET /v1/locations/{id}/risk) as text."""

from datetime import datetime
from typing import Any


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _when(value: str | None) -> str | None:
    if not value:
        return None
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M %Z").strip()


def explain_lines(risk: dict[str, Any]) -> list[str]:
    level = str(risk["level"])
    since = _when(risk.get("since"))
    head = f"{risk['location_id']}: {level.upper()}"
    if since is not None:
        # When the location entered this level (for "none": when it last fell to it).
        head += f" since {since}"
    head += f" (policy {risk['policy_version']})"
    lines = [head]
    if risk.get("meaning"):
        lines.append(f"  {risk['meaning']}")
    for reason in risk["reasons"]:
        count = reason.get("evidence_count") or len(reason["evidence"])
        evidence = f" ({plural(count, 'event')})" if count else ""
        lines.append(f"  - [{reason['level']}] {reason['rule_id']}: {reason['description']}{evidence}")
        for ref in reason["evidence"]:
            lines.append(f"      {ref['time']}  {ref['type']}  {ref['source']}  {ref['event_id']}")
    score = risk.get("score") or 0.0
    if score > 0:
        # The accumulation rule's score: low-level concerns weighted, halving with age.
        # Other rules set levels without it, so a zero says nothing about the level.
        lines.append(f"  accumulated concern score: {score:g} (weighted low-level concerns, decaying with age)")
    for action in risk["actions"]:
        lines.append(f"  action: {action['action']} (lead: {action['lead']})")
    evaluated = _when(risk.get("evaluated_at"))
    if evaluated is not None:
        lines.append(f"  evaluated at {evaluated} (event time)")
    return lines
