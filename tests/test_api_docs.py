"""The API documentation works offline and "Try it out" sends the key: Swagger UI and ReDoc
load only same-origin assets, and both OpenAPI documents declare bearer auth on every
protected operation and on nothing else."""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.alerts.app import build_runtime
from services.alerts.app import create_app as create_alerts_app
from services.alerts.auth import AlertKeys
from services.alerts.settings import AlertsSettings
from services.broker.settings import KafkaSettings
from services.ingest.app import create_app as create_ingest_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings


@pytest.fixture
def ingest_app(kafka_settings: KafkaSettings, api_keys: ApiKeyRegistry) -> FastAPI:
    return create_ingest_app(IngestSettings(), kafka_settings, api_keys)


@pytest.fixture
def alerts_app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = AlertsSettings(
        database_url=f"sqlite:///{tmp_path / 'alerts.db'}",
        contacts_file=tmp_path / "contacts.yaml",
        api_keys_file=tmp_path / "keys.toml",
    )
    runtime = build_runtime(settings, None, AlertKeys([]))
    yield create_alerts_app(runtime, run_background=False)
    runtime.store.close()


ASSET = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url:\s*'([^']+)'""")


def assets_of(html: str) -> list[str]:
    return [a or b for a, b in ASSET.findall(html)]


@pytest.mark.parametrize("which", ["ingest_app", "alerts_app"])
def test_docs_pages_load_only_same_origin_assets(which: str, request: pytest.FixtureRequest) -> None:
    app: FastAPI = request.getfixturevalue(which)
    client = TestClient(app)  # no lifespan: the pages need nothing started
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.text
        assert "cdn" not in html.lower() and "https://" not in html and "http://" not in html
        urls = assets_of(html)
        assert len(urls) >= (4 if page == "/docs" else 3), urls
        for url in urls:
            target = urljoin(f"http://testserver{page}", url)
            assert urlparse(target).netloc == "testserver", url
            asset = client.get(target)
            assert asset.status_code == 200, url
            suffix = Path(urlparse(target).path).suffix
            assert kinds[suffix] in asset.headers["content-type"], (url, asset.headers["content-type"])
            assert len(asset.content) > 1000 or suffix == ".json"
    # Swagger UI must not call the online validator either.
    assert '"validatorUrl": null' in client.get("/docs").text


@pytest.mark.parametrize("which", ["ingest_app", "alerts_app"])
def test_openapi_declares_bearer_auth_on_every_protected_operation(which: str, request: pytest.FixtureRequest) -> None:
    app: FastAPI = request.getfixturevalue(which)
    spec = TestClient(app).get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["HTTPBearer"]["description"],
    }
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) >= 6
    client = TestClient(app)
    for path, method, op in operations:
        # Protected is what answers 401 without a key (auth is checked before anything else).
        protected = client.request(method, re.sub(r"\{[^}]+\}", "x", path)).status_code == 401
        if protected:
            assert op.get("security") == [{"HTTPBearer": []}], (method, path)
            if which == "ingest_app":
                assert "401" in op["responses"], (method, path)
        else:
            assert "security" not in op, (method, path)
    assert {p for p, _, op in operations if "security" not in op} >= {"/healthz", "/readyz", "/metrics"}
    assert not any(p.startswith(("/docs", "/redoc")) for p in spec["paths"])
