"""Puts the board into the alert service's app: routes, assets, headers, error pages."""

import logging
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.alerts.auth import AlertKeys
from services.alerts.board import forms, pages
from services.alerts.board.context import Board, NotVisible
from services.alerts.board.render import STATIC, Pages
from services.alerts.board.session import SECURITY_HEADERS, CsrfRefused, Sessions, SignInRequired, sign_in_url
from services.alerts.names import NameBook
from services.alerts.routing import Directory
from services.alerts.store import AlertStore

log = logging.getLogger("caresignal.alerts.board")


def govuk_dist(node_modules: Path) -> Path:
    return node_modules / "govuk-frontend" / "dist" / "govuk"


def install_board(
    app: FastAPI,
    store: AlertStore,
    directory: Directory,
    names: NameBook,
    keys: AlertKeys,
    node_modules: Path,
    secret: bytes | None,
) -> None:
    dist = govuk_dist(node_modules)
    if not (dist / "govuk-frontend.min.css").is_file():
        # The API and the alerts must not stop for want of a stylesheet: say so where it shows.
        problem = f"GOV.UK Frontend is not installed in {node_modules}: run `npm ci` in the project root"
        log.error("the risk board is off: %s", problem)

        @app.get("/board", include_in_schema=False)
        def board_off() -> Response:
            return Response(f"The risk board is off: {problem}.\n", status_code=503, media_type="text/plain")

        return
    pages_ = Pages(names)
    app.state.board = Board(store, directory, Sessions(keys, secret or secrets.token_bytes(32)), pages_, names)
    # govuk-frontend's CSS asks for its fonts and images under /assets.
    app.mount("/assets", StaticFiles(directory=dist / "assets"), name="govuk-assets")
    app.mount("/board/static/govuk", StaticFiles(directory=dist), name="govuk")
    app.mount("/board/static/app", StaticFiles(directory=STATIC), name="board-static")
    app.include_router(pages.router)
    app.include_router(forms.router)

    def _is_board(request: Request) -> bool:
        path = request.url.path
        return path == "/" or path.startswith(("/board", "/assets"))

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        if _is_board(request):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            if request.url.path.startswith("/board") and not request.url.path.startswith("/board/static"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _message(request: Request, status: int, heading: str, message: str) -> Response:
        session = app.state.board.sessions.current(request)
        return pages_.render(request, "message.html", session, status, heading=heading, message=message, csrf="")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return _message(
            request,
            403,
            "Your form has expired",
            "The page you sent it from was out of date. Go back, refresh and try again.",
        )

    @app.exception_handler(NotVisible)
    async def _not_found(request: Request, exc: NotVisible) -> Response:
        return _message(request, 404, "Page not found", "There is nothing here that you can see.")
