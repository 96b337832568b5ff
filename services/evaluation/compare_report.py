"""A policy what-if as people and programs read it: a text table, markdown, or JSON.
Pure: a comparison and its context in, text out."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.risk import Level
from services.evaluation.changes import Change
from services.evaluation.policy_compare import Comparison, Crossings, Difference


@dataclass(frozen=True)
class Side:
    file: str
    version: str


@dataclass(frozen=True)
class Context:
    old: Side
    new: Side
    source: str
    events: int
    skipped: Mapping[str, int]


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


def _by(change: Change) -> str:
    """The rules that set the change's level; a fall to none has none to name."""
    if change.new is Level.none:
        return ""
    return " by " + (", ".join(change.rules) if change.rules else "no rule at that level")


def side_text(level: Level, change: Change | None, at: datetime) -> str:
    """One policy's side of a difference: its level at `at`, and its change at that point
    of its sequence (at `at`, or later), with the rules that set its new level."""
    if change is None:
        return f"{level.label}; no further change"
    verb = "rises" if change.escalation else "falls"
    if change.time == at:
        return f"{change.new.label} ({verb} from {change.old.label}){_by(change)}"
    return f"{level.label}; {verb} to {change.new.label} on {_when(change.time)}{_by(change)}"


def _days(days: Mapping[Level, float]) -> list[str]:
    return [f"{days.get(level, 0.0):,.1f}" for level in Level]


def _crossings(c: Crossings) -> str:
    return f"{c.moderate_plus} to Moderate+, {c.major} to Major"


def summary_lines(ctx: Context, comparison: Comparison) -> list[str]:
    s = comparison.summary
    period = (comparison.end - comparison.start).total_seconds() / 86_400
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(ctx.skipped.items()) if n)
    return [
        f"Policy what-if: {ctx.old.file} ({ctx.old.version}) -> {ctx.new.file} ({ctx.new.version})",
        f"History: {ctx.source}: {ctx.events:,} events{f' (skipped: {skipped})' if skipped else ''}, "
        f"{s.locations:,} locations, {_when(comparison.start)} to {_when(comparison.end)} ({period:,.1f} days)",
        f"Locations whose levels differ: {s.locations_levels_differ:,} of {s.locations_changed:,} with a change "
        f"under either policy; same levels, other rules: {s.locations_reasons_differ:,}",
        f"Organisations whose levels differ: {s.organisations_levels_differ:,} of {s.organisations_changed:,}; "
        f"same levels, other rules: {s.organisations_reasons_differ:,}",
        f"Escalations: old policy {_crossings(s.escalations_old)}; new policy {_crossings(s.escalations_new)}",
        f"Escalations the new policy adds: {_crossings(s.escalations_added)}; "
        f"that it removes: {_crossings(s.escalations_removed)} (per location; one that only moves is neither)",
    ]


def _header() -> list[str]:
    return ["scope", "subject", "differs", "from", "old policy", "new policy"]


def _row(d: Difference) -> list[str]:
    return [
        d.scope,
        d.subject,
        "level" if d.kind == "levels" else "rules",
        _when(d.time),
        side_text(d.old_level, d.old_change, d.time),
        side_text(d.new_level, d.new_change, d.time),
    ]


def _days_rows(comparison: Comparison) -> list[list[str]]:
    s = comparison.summary
    return [["old", *_days(s.days_old)], ["new", *_days(s.days_new)]]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def text(ctx: Context, comparison: Comparison, limit: int | None = 50) -> str:
    lines = summary_lines(ctx, comparison)
    lines += ["", "Location-days at each level:"]
    lines += _table([["policy", *(level.label for level in Level)], *_days_rows(comparison)])
    differences = comparison.differences
    lines.append("")
    if not differences:
        lines.append("No differences: both policies make the same level changes, for the same rules.")
        return "\n".join(lines) + "\n"
    shown = differences if limit is None else differences[:limit]
    lines += _table([_header(), *(_row(d) for d in shown)])
    if len(shown) < len(differences):
        lines.append(f"... and {len(differences) - len(shown):,} more (--limit 0 shows all; --json or --out has all)")
    return "\n".join(lines) + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown(ctx: Context, comparison: Comparison) -> str:
    lines = [
        "# Policy what-if",
        "",
        f"Old `{ctx.old.file}` ({ctx.old.version}), new `{ctx.new.file}` ({ctx.new.version}).",
        "",
    ]
    lines += [f"- {line}" for line in summary_lines(ctx, comparison)[1:]]
    lines += ["", "## Location-days at each level", ""]
    lines += [_md_row(["policy", *(level.label for level in Level)]), _md_row(["---"] * (len(Level) + 1))]
    lines += [_md_row(row) for row in _days_rows(comparison)]
    lines += ["", "## Differences", ""]
    if not comparison.differences:
        lines.append("None: both policies make the same level changes, for the same rules.")
    else:
        lines += [_md_row(_header()), _md_row(["---"] * len(_header()))]
        lines += [_md_row(_row(d)) for d in comparison.differences]
    return "\n".join(lines) + "\n"


def _change_json(change: Change | None) -> dict[str, Any] | None:
    if change is None:
        return None
    return {
        "time": change.time.isoformat(),
        "sequence": change.sequence,
        "old_level": change.old.name,
        "new_level": change.new.name,
        "rules": list(change.rules),
    }


def _crossings_json(c: Crossings) -> dict[str, int]:
    return {"moderate_plus": c.moderate_plus, "major": c.major}


def as_json(ctx: Context, comparison: Comparison) -> dict[str, Any]:
    s = comparison.summary
    return {
        "old": {"file": ctx.old.file, "version": ctx.old.version},
        "new": {"file": ctx.new.file, "version": ctx.new.version},
        "history": {
            "source": ctx.source,
            "events": ctx.events,
            "skipped": dict(ctx.skipped),
            "start": comparison.start.isoformat(),
            "end": comparison.end.isoformat(),
        },
        "summary": {
            "locations": s.locations,
            "locations_changed": s.locations_changed,
            "locations_levels_differ": s.locations_levels_differ,
            "locations_reasons_differ": s.locations_reasons_differ,
            "organisations_changed": s.organisations_changed,
            "organisations_levels_differ": s.organisations_levels_differ,
            "organisations_reasons_differ": s.organisations_reasons_differ,
            "escalations_old": _crossings_json(s.escalations_old),
            "escalations_new": _crossings_json(s.escalations_new),
            "escalations_added": _crossings_json(s.escalations_added),
            "escalations_removed": _crossings_json(s.escalations_removed),
            "location_days_old": {level.name: round(days, 3) for level, days in s.days_old.items()},
            "location_days_new": {level.name: round(days, 3) for level, days in s.days_new.items()},
        },
        "differences": [
            {
                "scope": d.scope,
                "subject": d.subject,
                "kind": d.kind,
                "time": d.time.isoformat(),
                "old_level": d.old_level.name,
                "new_level": d.new_level.name,
                "old_change": _change_json(d.old_change),
                "new_change": _change_json(d.new_change),
                "old_changes": d.old_changes,
                "new_changes": d.new_changes,
            }
            for d in comparison.differences
        ],
    }
