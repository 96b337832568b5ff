"""The board's forms: sign in and out, acknowledge, mute, provider concerns processes.

Every POST carries the CSRF token of the session (or of the sign-in form) and follows
the same rules as the API; success answers 303 to a page (post, redirect, get).
"""

import asyncio
import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from schemas.identifiers import LocationId
from services.alerts.board.concerns import Lead, Outcome, Step, StepRefused
from services.alerts.board.context import Board, NotVisible, board_of, visible_alert
from services.alerts.board.pages import AlertIdPath, ProcessIdPath, alert_context, concern_context, session_of
from services.alerts.board.session import PRESESSION_COOKIE, Session, Sessions, check_csrf, safe_next
from services.alerts.board.store import ProcessNotFound, StepEntry
from services.alerts.board.view import may_see_location

log = logging.getLogger("caresignal.alerts.board")
router = APIRouter(include_in_schema=False)
BoardDep = Annotated[Board, Depends(board_of)]
SessionDep = Annotated[Session, Depends(session_of)]
MAX_MUTE_HOURS = 24 * 90
MAX_FORM_BYTES = 16_384


async def form_of(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode(errors="replace"), keep_blank_values=True, max_num_fields=50)
    return {k: v[0] for k, v in parsed.items()}


FormDep = Annotated[dict[str, str], Depends(form_of)]


def checked(session: Session, form: dict[str, str]) -> Session:
    check_csrf(session.csrf, form.get("csrf_token"))
    return session


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/board/sign-in", response_class=HTMLResponse)
def sign_in_page(
    request: Request, board: BoardDep, next: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    token = Sessions.presession_token(request)
    page = board.pages.render(request, "sign_in.html", None, next_path=safe_next(next), errors={}, csrf=token)
    Sessions.keep_presession(request, page, token)
    return page


@router.post("/board/sign-in")
async def sign_in(request: Request, board: BoardDep, form: FormDep) -> Response:
    check_csrf(request.cookies.get(PRESESSION_COOKIE), form.get("csrf_token"))
    target = safe_next(form.get("next"))
    client = request.client.host if request.client else "unknown"
    wait_s = board.sessions.throttle.wait_s(client, time.time())
    if wait_s > 0:
        minutes = max(1, round(wait_s / 60))
        errors = {"key": f"Too many attempts: try again in {minutes} minute{'' if minutes == 1 else 's'}"}
        csrf = form.get("csrf_token", "")
        return board.pages.render(request, "sign_in.html", None, 429, next_path=target, errors=errors, csrf=csrf)
    response = _see_other(target)
    viewer = board.sessions.sign_in(response, request, form.get("key", "").strip())
    if viewer is None:
        board.sessions.throttle.failed(client, time.time())
        log.warning("board: failed sign-in from %s", client)
        errors = {"key": "Enter a valid alerts API key" if form.get("key") else "Enter your alerts API key"}
        page = board.pages.render(
            request, "sign_in.html", None, 401, next_path=target, errors=errors, csrf=form.get("csrf_token", "")
        )
        return page
    log.info("board: %s signed in", viewer.actor)
    return response


@router.post("/board/sign-out")
async def sign_out(request: Request, board: BoardDep, form: FormDep) -> Response:
    session = board.sessions.current(request)
    if session is not None:
        checked(session, form)
    response = _see_other("/board/sign-in")
    Sessions.sign_out(response)
    return response


@router.post("/board/alerts/{alert_id}/acknowledge")
async def acknowledge(alert_id: AlertIdPath, board: BoardDep, session: SessionDep, form: FormDep) -> Response:
    checked(session, form)
    await asyncio.to_thread(visible_alert, board, session, alert_id)
    await asyncio.to_thread(board.store.acknowledge, alert_id, session.viewer.actor, time.time())
    return _see_other(f"/board/alerts/{alert_id}?done=acknowledged")


@router.post("/board/alerts/{alert_id}/mute")
async def mute(
    alert_id: AlertIdPath, request: Request, board: BoardDep, session: SessionDep, form: FormDep
) -> Response:
    checked(session, form)
    context = await asyncio.to_thread(alert_context, board, session, alert_id)
    row = context["a"]
    errors: dict[str, str] = {}
    authority = session.viewer.authority or form.get("authority") or None
    if authority is None or authority not in row["recipient_authorities"]:
        errors["authority"] = "Select an authority that received this alert"
    try:
        hours = float(form.get("hours", ""))
        if not 0 < hours <= MAX_MUTE_HOURS:
            raise ValueError
    except ValueError:
        errors["hours"] = f"Select how long to mute for: at most {MAX_MUTE_HOURS} hours"
        hours = 0
    if not row["location_id"]:
        errors["hours"] = "Only a location can be muted"
    if errors:
        context["errors"] = errors
        return board.pages.render(request, "alert.html", session, 400, **context)
    now = datetime.now(UTC)
    until = (now + timedelta(hours=hours)).timestamp()
    assert authority is not None
    await asyncio.to_thread(
        board.store.add_mute, authority, row["location_id"], until, session.viewer.actor, now.timestamp()
    )
    return _see_other(f"/board/alerts/{alert_id}?done=muted")


@router.post("/board/alerts/{alert_id}/concern")
async def open_from_alert(alert_id: AlertIdPath, board: BoardDep, session: SessionDep, form: FormDep) -> Response:
    checked(session, form)
    row = await asyncio.to_thread(visible_alert, board, session, alert_id)
    if not row["location_id"]:
        raise NotVisible(alert_id)
    process_id = await asyncio.to_thread(
        board.store.open_process,
        row["location_id"],
        session.viewer.authority,
        alert_id,
        session.viewer.actor,
        time.time(),
    )
    return _see_other(f"/board/concerns/{process_id}")


@router.post("/board/locations/{location_id}/concerns")
async def open_from_location(location_id: LocationId, board: BoardDep, session: SessionDep, form: FormDep) -> Response:
    checked(session, form)
    known = location_id in board.directory.locations or board.store.subject("location", location_id) is not None
    if not known or not may_see_location(board.directory, session.viewer.authority, location_id):
        raise NotVisible(location_id)
    process_id = await asyncio.to_thread(
        board.store.open_process, location_id, session.viewer.authority, None, session.viewer.actor, time.time()
    )
    return _see_other(f"/board/concerns/{process_id}")


def _parse_step(form: dict[str, str]) -> tuple[StepEntry | None, dict[str, str]]:
    errors: dict[str, str] = {}
    step = lead = outcome = held_on = None
    try:
        step = Step(form.get("step", ""))
    except ValueError:
        errors["step"] = "Select the step"
    try:
        held_on = date(
            int(form.get("held_on-year", "")), int(form.get("held_on-month", "")), int(form.get("held_on-day", ""))
        )
    except ValueError:
        errors["held_on"] = "Enter the date as a real day, month and year"
    try:
        lead = Lead(form.get("lead", ""))
    except ValueError:
        errors["lead"] = "Select the lead role"
    if form.get("outcome"):
        try:
            outcome = Outcome(form["outcome"])
        except ValueError:
            errors["outcome"] = "Select an outcome from the list"
    if errors or step is None or held_on is None or lead is None:
        return None, errors
    return StepEntry(step, held_on, lead.value, outcome, ""), errors


@router.post("/board/concerns/{process_id}/steps")
async def record_step(
    process_id: ProcessIdPath, request: Request, board: BoardDep, session: SessionDep, form: FormDep
) -> Response:
    checked(session, form)
    entry, errors = _parse_step(form)
    if entry is not None:
        entry = StepEntry(entry.step, entry.held_on, entry.lead, entry.outcome, session.viewer.actor)
        try:
            await asyncio.to_thread(
                board.store.record_step,
                process_id,
                session.viewer.authority,
                entry,
                datetime.now(UTC).date(),
                time.time(),
            )
            return _see_other(f"/board/concerns/{process_id}")
        except ProcessNotFound:
            raise NotVisible(process_id) from None
        except StepRefused as exc:
            errors[exc.field] = exc.message[:1].upper() + exc.message[1:]
    context = await asyncio.to_thread(concern_context, board, session, process_id)
    context["errors"] = errors
    context["form"] = {
        "step": form.get("step"),
        "day": form.get("held_on-day", ""),
        "month": form.get("held_on-month", ""),
        "year": form.get("held_on-year", ""),
        "lead": form.get("lead"),
        "outcome": form.get("outcome"),
    }
    return board.pages.render(request, "concern.html", session, 400, **context)
