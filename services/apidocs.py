"""Swagger UI and ReDoc served from this process, not from a CDN.

Public-sector networks are often offline or filter CDNs; FastAPI's default pages load
their scripts from jsDelivr and are then blank. The assets shipped in the
`fastapi-offline` package are served from `STATIC_URL` instead.
"""

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs-static"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

SWAGGER_PARAMETERS: dict[str, Any] = {
    # The default validator badge calls validator.swagger.io.
    "validatorUrl": None,
    # The key typed into "Authorize" survives a page reload.
    "persistAuthorization": True,
}


class DocsAssetsMissing(RuntimeError):
    """The fastapi-offline package is installed without its static files."""


def assets_directory() -> Path:
    directory = Path(fastapi_offline.__file__).parent / "static"
    missing = [name for name in ASSETS if not (directory / name).is_file()]
    if missing:
        raise DocsAssetsMissing(f"fastapi-offline's static files {missing} are missing from {directory}")
    return directory


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at `docs_url` and ReDoc at `redoc_url` with same-origin assets.

    The app must be created with `docs_url=None, redoc_url=None`.
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None: install_docs serves them")
    app.mount(STATIC_URL, StaticFiles(directory=assets_directory()), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that mounts the service under a path
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            oauth2_redirect_url=oauth2_redirect_url,
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
