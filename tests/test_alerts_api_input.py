"""Bad input to the alert API gets a 4xx naming the field and the reason, never a 5xx.

The real app and store (SQLite in tmp_path, or a database of the test's own on the real
PostgreSQL server); no broker is needed for what is checked here, so none is consumed.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.alerts.app import build_runtime, create_app
from services.alerts.auth import AlertKeys
from services.alerts.settings import AlertsSettings
from tests.alert_peers import HOST, LOCATION, OPERATOR_KEY, key_for, write_keys

OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
AUTHORITY = {"Authorization": f"Bearer {key_for(HOST)}"}


def client_for(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    keys = tmp_path / "keys.toml"
    write_keys(keys)
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("authorities: {}\n")
    settings = AlertsSettings(database_url=database_url, contacts_file=contacts, api_keys_file=keys)
    runtime = build_runtime(settings, None, AlertKeys.load(keys))
    with TestClient(create_app(runtime, run_background=False)) as client:
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database_url")
    else:
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    yield from client_for(tmp_path, url)


def problems(body: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """The validation shape: a list of (loc, msg), as the OpenAPI document says."""
    assert isinstance(body["detail"], list), body
    return [(entry["loc"], entry["msg"]) for entry in body["detail"]]


def mute(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/mutes", headers=headers, json={"location_id": LOCATION, **body})


def test_a_mute_until_the_end_of_time_is_refused_like_hours_beyond_the_cap(client: TestClient) -> None:
    far = mute(client, AUTHORITY, until="9999-12-31T00:00:00Z")
    assert far.status_code == 422, far.text
    [(loc, msg)] = problems(far.json())
    assert loc == ["body", "until"]
    assert "2160 hours" in msg and "a mute always expires" in msg
    just_over = (datetime.now(UTC) + timedelta(hours=2160, minutes=5)).isoformat()
    assert mute(client, AUTHORITY, until=just_over).status_code == 422
    within = (datetime.now(UTC) + timedelta(hours=2159)).isoformat()
    assert mute(client, AUTHORITY, until=within).status_code == 201
    assert mute(client, AUTHORITY, hours=2161).status_code == 422
    assert mute(client, AUTHORITY, hours=2160).status_code == 201
    instant = mute(client, AUTHORITY, hours=1e-300)
    assert instant.status_code == 422
    assert problems(instant.json())[0][0] == ["body", "hours"]


def test_own_checks_answer_in_the_documented_422_shape(client: TestClient) -> None:
    past = mute(client, AUTHORITY, until="2001-01-01T00:00:00Z")
    assert past.status_code == 422
    assert problems(past.json()) == [(["body", "until"], "Value error, `until` is in the past")]
    no_authority = mute(client, OPERATOR, hours=1)
    assert no_authority.status_code == 422
    [(loc, msg)] = problems(no_authority.json())
    assert loc == ["body", "authority"] and "operator" in msg


@pytest.mark.parametrize(
    "mute_id",
    ["87347217838446699157127168", "9223372036854775808", "2147483648", "0", "-1"],
)
def test_a_mute_id_out_of_range_is_a_422_naming_it(client: TestClient, mute_id: str) -> None:
    response = client.delete(f"/v1/mutes/{mute_id}", headers=OPERATOR)
    assert response.status_code == 422, response.text
    [(loc, _)] = problems(response.json())
    assert loc == ["path", "mute_id"]


def test_an_unknown_mute_alert_or_endpoint_is_a_404(client: TestClient) -> None:
    assert client.delete("/v1/mutes/2147483647", headers=OPERATOR).status_code == 404
    assert client.get("/v1/alerts/al_" + "0" * 24, headers=OPERATOR).status_code == 404
    assert client.get("/v1/alerts/al_" + "0" * 24 + "-r3", headers=AUTHORITY).status_code == 404
    assert client.post("/v1/endpoints/hook-x/enable", headers=OPERATOR).status_code == 404


def test_malformed_ids_are_a_422_saying_what_an_id_looks_like(client: TestClient) -> None:
    alert = client.get("/v1/alerts/al_%00' OR 1=1", headers=OPERATOR)
    assert alert.status_code == 422
    assert problems(alert.json())[0][0] == ["path", "alert_id"]
    endpoint = client.post("/v1/endpoints/Hook-X/enable", headers=OPERATOR)
    assert endpoint.status_code == 422
    assert problems(endpoint.json())[0][0] == ["path", "endpoint_id"]
