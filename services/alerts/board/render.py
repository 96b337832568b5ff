"""The board's Jinja environment, its filters, and the assets it serves from node_modules."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from schemas.risk import Level
from services.alerts.board.concerns import LEAD_LABELS, OUTCOME_LABELS, STEP_LABELS, Lead, Outcome, Step
from services.alerts.board.session import JS_ENABLED_SCRIPT, Session
from services.alerts.messages import event_type_label
from services.alerts.names import NameBook

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

LEVEL_TAGS = {"major": "govuk-tag--red", "moderate": "govuk-tag--orange", "minor": "govuk-tag--yellow"}
SERVICE_TYPES = {
    "care_home": "Care home",
    "nursing_home": "Nursing home",
    "home_care": "Home care",
    "supported_living": "Supported living",
    "extra_care": "Extra care",
    "shared_lives": "Shared lives",
}


def _when(value: datetime | float | None) -> str:
    if value is None:
        return ""
    at = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return at.astimezone(UTC).strftime("%-d %B %Y, %H:%M UTC")


def _short(value: datetime | float | None) -> str:
    if value is None:
        return ""
    at = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return at.astimezone(UTC).strftime("%-d %b %Y %H:%M")


def _day(value: datetime | float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    at = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return at.strftime("%-d %B %Y")


AUDIT_ACTIONS = {
    "alert.acknowledged": "Acknowledged",
    "mute.created": "Location muted",
    "mute.revoked": "Mute ended",
    "delivery.dead": "A delivery was given up",
    "concern.opened": "Provider concerns process started",
    "concern.closed": "Process closed",
}


def _audit_text(entry: dict[str, Any]) -> str:
    action = str(entry["action"])
    if action == "concern.step":
        step = json.loads(entry["detail"] or "{}").get("step", "")
        return "Step recorded: " + STEP_LABELS[Step(step)].lower() if step in Step.__members__ else "Step recorded"
    if action == "concern.closed":
        outcome = json.loads(entry["detail"] or "{}").get("outcome", "")
        return (
            "Process closed: " + OUTCOME_LABELS[Outcome(outcome)].lower() if outcome in Outcome.__members__ else action
        )
    if action.startswith("alert.") and action != "alert.acknowledged":
        return "Alert recorded (" + action.removeprefix("alert.").replace("-", " ") + ")"
    return AUDIT_ACTIONS.get(action, action)


def _page_url(path: str, query: dict[str, str], number: int) -> str:
    """The URL of page `number` of a list, keeping its filters (page 1 is the list's own URL)."""
    values = {k: v for k, v in query.items() if k != "page"}
    if number > 1:
        values["page"] = str(number)
    return f"{path}?{urlencode(values)}" if values else path


def _level_label(name: str) -> str:
    return Level[name].label.capitalize()


def _level_tag(name: str) -> Markup:
    css = LEVEL_TAGS.get(name, "govuk-tag--grey")
    return Markup('<strong class="govuk-tag {}">{}</strong>').format(css, _level_label(name))


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["day"] = _day
    env.filters["short"] = _short
    env.filters["level_label"] = _level_label
    env.filters["level_tag"] = _level_tag
    env.filters["event_type"] = event_type_label
    env.filters["audit_text"] = _audit_text
    env.filters["service_type"] = lambda v: SERVICE_TYPES.get(v or "", v or "Unknown")
    env.globals.update(
        js_enabled_script=Markup(JS_ENABLED_SCRIPT),
        page_url=_page_url,
        levels=[level.name for level in sorted(Level, reverse=True)],
        service_types=SERVICE_TYPES,
        step_labels={s.value: label for s, label in STEP_LABELS.items()},
        lead_labels={lead.value: label for lead, label in LEAD_LABELS.items()},
        outcome_labels={o.value: label for o, label in OUTCOME_LABELS.items()},
        steps=[s.value for s in Step],
        leads=[lead.value for lead in Lead],
        outcomes=[o.value for o in Outcome],
    )
    return env


class Pages:
    """Renders templates with what every page needs (the viewer, the CSRF token, the names)."""

    def __init__(self, names: NameBook) -> None:
        self.env = make_environment()
        self.names = names

    def render(
        self, request: Request, template: str, session: Session | None, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        given = context.pop("csrf", "")
        page = self.env.get_template(template).render(
            request_path=request.url.path,
            viewer=session.viewer if session else None,
            csrf=session.csrf if session else given,
            names=context.pop("names", None) or self.names.current(),
            **context,
        )
        return HTMLResponse(page, status_code=status_code)
