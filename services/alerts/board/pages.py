"""The board's pages that read: the board, a location, an organisation, alerts, processes."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup

from schemas.alerts import KIND_LABELS, AlertKind
from schemas.identifiers import LocationId, ProviderId
from services.alerts.board.chart import level_chart
from services.alerts.board.concerns import LEAD_LABELS, OUTCOME_LABELS, STEP_LABELS, RecordedStep, Step, next_steps
from services.alerts.board.context import Board, NotVisible, alerts_about, board_of, visible_alert
from services.alerts.board.paging import Paged, PageOutOfRange, paginate
from services.alerts.board.session import Session
from services.alerts.board.store import ProcessNotFound
from services.alerts.board.view import (
    BoardFilter,
    BoardRow,
    apply_filter,
    board_csv,
    by_severity,
    counts,
    location_rows,
    may_see_location,
    may_see_organisation,
    organisation_rows,
    summarise_siblings,
)
from services.alerts.routing import ALERT_ID_PATTERN
from services.alerts.store import AlertFilter

router = APIRouter(include_in_schema=False)
BoardDep = Annotated[Board, Depends(board_of)]


def session_of(request: Request) -> Session:
    return board_of(request).sessions.require(request)


SessionDep = Annotated[Session, Depends(session_of)]
Role = Annotated[str | None, Query(pattern="^(host|placing)?$")]
ServiceTypeQ = Annotated[
    str | None, Query(pattern="^(care_home|nursing_home|home_care|supported_living|extra_care|shared_lives)?$")
]
LevelQ = Annotated[str | None, Query(pattern="^(none|minor|moderate|major)?$")]
AlertIdPath = Annotated[str, Path(pattern=ALERT_ID_PATTERN)]
ProcessIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
OrganisationQ = Annotated[str | None, Query(pattern=r"^(1-[0-9]{9,11})?$")]
PageQ = Annotated[int, Query(ge=1, le=1_000_000)]
T = TypeVar("T")
BOARD_PAGE_SIZE = 100
ORGANISATION_PAGE_SIZE = 50
# The organisation's raised locations listed on a location's page; the rest are counted.
RAISED_SIBLINGS_SHOWN = 10


def _filter(role: str | None, service_type: str | None, level: str | None, organisation: str | None) -> BoardFilter:
    # A select left at "Any ..." sends "": no filter.
    return BoardFilter(role or None, service_type or None, level or None, organisation or None)


@router.get("/", response_class=RedirectResponse)
def root() -> RedirectResponse:
    return RedirectResponse("/board", status_code=303)


@router.get("/board", response_class=HTMLResponse)
def board_page(
    request: Request,
    board: BoardDep,
    session: SessionDep,
    role: Role = None,
    service_type: ServiceTypeQ = None,
    level: LevelQ = None,
    organisation: OrganisationQ = None,
    page: PageQ = 1,
) -> Response:
    flt = _filter(role, service_type, level, organisation)
    authority = session.viewer.authority
    everything = location_rows(board.directory, board.store.subjects("location"), authority)
    without_level = apply_filter(everything, BoardFilter(flt.role, flt.service_type, None, flt.organisation))
    rows = apply_filter(without_level, flt)
    query_with_level = {
        name: urlencode({**flt.query(), "level": name}) for name in ("major", "moderate", "minor", "none")
    }
    return board.pages.render(
        request,
        "board.html",
        session,
        flt=flt,
        query=urlencode(flt.query()),
        filters=flt.query(),
        query_with_level=query_with_level,
        level_counts=counts(without_level),
        levels_options=[(name, name.capitalize()) for name in ("major", "moderate", "minor", "none")],
        organisation_options=_organisation_options(everything),
        paged=_page(rows, page, BOARD_PAGE_SIZE),
        organisations=organisation_rows(rows, board.store.subjects("organisation")),
        now=datetime.now(UTC),
    )


def _organisation_options(rows: list[BoardRow]) -> list[tuple[str, str]]:
    """The organisation filter's choices, by name (the ID beside it: two groups may share a name)."""
    names = {r.provider_id: r.provider_name for r in rows if r.provider_id}
    options = [(pid, f"{name} ({pid})" if name else pid) for pid, name in names.items()]
    return sorted(options, key=lambda o: (o[1].casefold(), o[0]))


def _page(rows: list[T], number: int, per_page: int) -> Paged[T]:
    try:
        return paginate(rows, number, per_page)
    except PageOutOfRange:
        raise NotVisible(f"page {number}") from None


@router.get("/board/export.csv")
def board_export(
    board: BoardDep,
    session: SessionDep,
    role: Role = None,
    service_type: ServiceTypeQ = None,
    level: LevelQ = None,
    organisation: OrganisationQ = None,
) -> Response:
    flt = _filter(role, service_type, level, organisation)
    rows = apply_filter(location_rows(board.directory, board.store.subjects("location"), session.viewer.authority), flt)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        board_csv(rows, board.names.current()),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="caresignal-board-{stamp}.csv"'},
    )


@router.get("/board/live")
def board_live(board: BoardDep, _: SessionDep) -> JSONResponse:
    """What the page's script polls: a token that changes when the board would."""
    return JSONResponse({"version": board.store.board_version()}, headers={"Cache-Control": "no-store"})


def _describe(points: list[tuple[datetime, str]], before: str | None) -> str:
    if not points:
        return "No change of level recorded."
    steps = "; ".join(f"{at.strftime('%-d %B %Y')}: {name}" for at, name in points)
    count = "1 change of level" if len(points) == 1 else f"{len(points)} changes of level"
    return f"{count}: {steps}" + (f" (before the first: {before})." if before else ".")


@router.get("/board/locations/{location_id}", response_class=HTMLResponse)
def location_page(location_id: LocationId, request: Request, board: BoardDep, session: SessionDep) -> Response:
    authority = session.viewer.authority
    location = board.directory.locations.get(location_id)
    stored = board.store.subject("location", location_id)
    if not may_see_location(board.directory, authority, location_id) or (location is None and stored is None):
        raise NotVisible(location_id)
    change = json.loads(stored["change_json"]) if stored else {}
    history = board.store.history("location", location_id)
    points = [(datetime.fromtimestamp(h["decided_at"], UTC), h["level"]) for h in history]
    before = history[0]["old_level"] if history else None
    rows = location_rows(board.directory, board.store.subjects("location"), authority)
    mine = next((r for r in rows if r.location_id == location_id), None)
    provider_id = location.provider_id if location else (stored or {}).get("provider_id")
    siblings = [r for r in rows if provider_id and r.provider_id == provider_id and r.location_id != location_id]
    return board.pages.render(
        request,
        "location.html",
        session,
        location_id=location_id,
        name=(location.name if location else None) or f"Location {location_id}",
        level=stored["level"] if stored else "none",
        since=stored["decided_at"] if stored else None,
        service_type=location.service_type.value if location else None,
        host_authority=location.host_authority if location else None,
        roles=list(mine.roles) if mine else [],
        provider_id=provider_id,
        meaning=change.get("meaning", ""),
        policy_version=change.get("policy_version", ""),
        reasons=change.get("reasons", []),
        actions=change.get("actions", []),
        chart=Markup(level_chart(points, datetime.now(UTC), _describe(points, before), before)),
        history=history,
        siblings=summarise_siblings(siblings, RAISED_SIBLINGS_SHOWN),
        alerts=alerts_about(board, session, location_id),
        processes=board.store.processes(location_id, authority),
    )


@router.get("/board/organisations/{provider_id}", response_class=HTMLResponse)
def organisation_page(
    provider_id: ProviderId,
    request: Request,
    board: BoardDep,
    session: SessionDep,
    level: LevelQ = None,
    page: PageQ = 1,
) -> Response:
    authority = session.viewer.authority
    stored = board.store.subject("organisation", provider_id)
    rows = [
        r
        for r in location_rows(board.directory, board.store.subjects("location"), authority)
        if r.provider_id == provider_id
    ]
    if not may_see_organisation(board.directory, authority, provider_id) or not (rows or stored):
        raise NotVisible(provider_id)
    change = json.loads(stored["change_json"]) if stored else {}
    flt = AlertFilter(limit=50)
    alerts = [
        a
        for a in board.store.list_alerts(flt, authority)
        if a["scope"] == "organisation" and a["provider_id"] == provider_id
    ]
    shown = by_severity(r for r in rows if not level or r.level == level)
    return board.pages.render(
        request,
        "organisation.html",
        session,
        provider_id=provider_id,
        organisation_name=board.names.current().organisation(provider_id),
        level=stored["level"] if stored else "none",
        since=stored["decided_at"] if stored else None,
        meaning=change.get("meaning", ""),
        reasons=change.get("reasons", []),
        level_filter=level or None,
        filters={"level": level} if level else {},
        level_counts=counts(rows),
        total=len(rows),
        paged=_page(shown, page, ORGANISATION_PAGE_SIZE),
        alerts=alerts,
    )


@router.get("/board/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, board: BoardDep, session: SessionDep) -> Response:
    authority = session.viewer.authority
    waiting = board.store.list_alerts(AlertFilter(state="open", limit=200), authority)
    recent = board.store.list_alerts(AlertFilter(limit=100), authority)
    others = [a for a in recent if a["state"] != "open"]
    return board.pages.render(request, "alerts.html", session, open_alerts=waiting, other_alerts=others)


def alert_context(board: Board, session: Session, alert_id: str) -> dict[str, Any]:
    row = visible_alert(board, session, alert_id)
    change = json.loads(row["change_json"])
    names = board.names.current()
    if row["location_id"]:
        subject = Markup('<a class="govuk-link" href="/board/locations/{0}">{1}</a>').format(
            row["location_id"], row["location_name"] or row["location_id"]
        )
        title = row["location_name"] or row["location_id"]
    else:
        title = names.organisation_label(row["provider_id"])
        subject = Markup('<a class="govuk-link" href="/board/organisations/{0}">{1}</a>').format(
            row["provider_id"], title
        )
    return {
        "a": row,
        "change": change,
        "label": KIND_LABELS[AlertKind(row["kind"])].capitalize(),
        "title": title,
        "subject_link": subject,
        "mute_authorities": [(r, names.authority_label(r)) for r in row["recipient_authorities"]],
        "errors": {},
        "notice": None,
    }


@router.get("/board/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(
    alert_id: AlertIdPath,
    request: Request,
    board: BoardDep,
    session: SessionDep,
    done: Annotated[str | None, Query(pattern="^(acknowledged|muted)$")] = None,
) -> Response:
    context = alert_context(board, session, alert_id)
    if done == "acknowledged":
        context["notice"] = "Alert acknowledged"
    elif done == "muted":
        context["notice"] = "Location muted for your authority" if session.viewer.authority else "Location muted"
    return board.pages.render(request, "alert.html", session, **context)


@router.get("/board/concerns", response_class=HTMLResponse)
def concerns_page(request: Request, board: BoardDep, session: SessionDep) -> Response:
    processes = board.store.processes(None, session.viewer.authority)
    return board.pages.render(request, "concerns.html", session, processes=processes)


def concern_context(board: Board, session: Session, process_id: int) -> dict[str, Any]:
    try:
        process = board.store.process(process_id, session.viewer.authority)
    except ProcessNotFound:
        raise NotVisible(process_id) from None
    recorded = [RecordedStep(Step(s["step"]), datetime.fromisoformat(s["held_on"]).date()) for s in process["steps"]]
    location = board.directory.locations.get(process["location_id"])
    name = (location.name if location else None) or f"Location {process['location_id']}"
    alert_id = process["alert_id"]
    return {
        "p": process,
        "location_name": name,
        "location_link": Markup('<a class="govuk-link" href="/board/locations/{0}">{1}</a>').format(
            process["location_id"], board.names.current().location_label(process["location_id"])
        ),
        "alert_link": Markup('<a class="govuk-link" href="/board/alerts/{0}">{0}</a>').format(alert_id)
        if alert_id
        else "None: started from the location's page",
        "next_steps": [(s.value, STEP_LABELS[s]) for s in next_steps(recorded, process["closed_at"] is not None)],
        "lead_options": list(LEAD_LABELS.items()),
        "outcome_options": list(OUTCOME_LABELS.items()),
        "form": {"step": None, "day": "", "month": "", "year": "", "lead": None, "outcome": None},
        "errors": {},
    }


@router.get("/board/concerns/{process_id}", response_class=HTMLResponse)
def concern_page(process_id: ProcessIdPath, request: Request, board: BoardDep, session: SessionDep) -> Response:
    return board.pages.render(request, "concern.html", session, **concern_context(board, session, process_id))
