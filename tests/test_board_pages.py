"""The risk board's pages in-process: sign-in, sessions and CSRF, need-to-know, headers,
the CSV, and the provider concerns process's rules. The real app and store (SQLite in
tmp_path); changes are routed and stored through the consumer's own code, without Kafka.
The browser tests (`test_board_browser.py`) drive the same pages over the real broker."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.alerts.app import AlertRuntime, build_runtime, create_app
from services.alerts.auth import AlertKeys
from services.alerts.settings import AlertsSettings
from tests.alert_peers import HOST, OPERATOR_KEY, PLACER_A, PLACER_B, THIRD, key_for, write_keys
from tests.board_data import change_doc, key_file_entry, put_location, put_placement, store_changes

LOC_A, LOC_B, LOC_C = "1-100000001", "1-100000002", "1-100000003"
PROVIDER, OTHER_PROVIDER = "1-000111222", "1-000333444"
PROVIDER_NAME = "Rose Care Group Ltd"
POLICE = "urn:caresignal:source:police"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertRuntime]:
    keys = tmp_path / "keys.toml"
    write_keys(keys)
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text("authorities: {}\n")
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database_url")
    else:
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    sources = tmp_path / "ingest-keys.toml"
    sources.write_text(key_file_entry("police", POLICE, "Surrey Police intelligence"))
    settings = AlertsSettings(database_url=url, contacts_file=contacts, api_keys_file=keys, source_names_file=sources)
    runtime = build_runtime(settings, None, AlertKeys.load(keys))
    put_location(runtime, LOC_A, PROVIDER, HOST, "Rose & Crown House", provider_name=PROVIDER_NAME)
    put_location(runtime, LOC_B, PROVIDER, PLACER_B, "Elm Lodge", "home_care", provider_name=PROVIDER_NAME)
    put_location(runtime, LOC_C, OTHER_PROVIDER, PLACER_B, "+44 Care (Sunset Court)")  # no provider name known
    put_placement(runtime, PLACER_A, LOC_A)
    put_placement(runtime, THIRD, LOC_A, active=False)
    now = datetime.now(UTC).replace(microsecond=0)
    store_changes(
        runtime,
        change_doc(LOC_A, PROVIDER, 1, "none", "moderate", now - timedelta(days=20)),
        change_doc(LOC_A, PROVIDER, 2, "moderate", "major", now - timedelta(days=2)),
        change_doc(LOC_B, PROVIDER, 1, "none", "minor", now - timedelta(days=5)),
        change_doc(LOC_C, OTHER_PROVIDER, 1, "none", "major", now - timedelta(days=1)),
    )
    yield runtime


@pytest.fixture
def client(runtime: AlertRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_background=False), follow_redirects=False) as client:
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


def sign_in(client: TestClient, key: str, next_path: str = "/board") -> None:
    form = client.get("/board/sign-in", params={"next": next_path})
    answer = client.post("/board/sign-in", data={"key": key, "next": next_path, "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == next_path


def test_a_page_without_a_session_sends_to_sign_in_and_back(client: TestClient) -> None:
    answer = client.get(f"/board/locations/{LOC_A}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/board/sign-in?next=/board/locations/{LOC_A}"
    form = client.get(answer.headers["location"])
    wrong = client.post(
        "/board/sign-in", data={"key": "cs_nope", "next": f"/board/locations/{LOC_A}", "csrf_token": csrf_of(form.text)}
    )
    assert wrong.status_code == 401
    assert "Enter a valid alerts API key" in wrong.text
    sign_in(client, key_for(HOST), f"/board/locations/{LOC_A}")
    assert client.get(f"/board/locations/{LOC_A}").status_code == 200


def test_the_session_cookie_is_httponly_lax_and_names_no_key(client: TestClient) -> None:
    form = client.get("/board/sign-in")
    answer = client.post(
        "/board/sign-in", data={"key": OPERATOR_KEY, "next": "/board", "csrf_token": csrf_of(form.text)}
    )
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and "caresignal_board=" in v)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/board" in cookie
    assert OPERATOR_KEY not in cookie


def test_sign_in_elsewhere_is_refused_without_the_form_token_and_never_redirects_off_site(client: TestClient) -> None:
    assert client.post("/board/sign-in", data={"key": OPERATOR_KEY, "next": "/board"}).status_code == 403
    form = client.get("/board/sign-in", params={"next": "//evil.example/board"})
    answer = client.post(
        "/board/sign-in", data={"key": OPERATOR_KEY, "next": "//evil.example", "csrf_token": csrf_of(form.text)}
    )
    assert answer.headers["location"] == "/board"


def test_every_form_needs_the_session_token(client: TestClient) -> None:
    sign_in(client, key_for(HOST))
    alerts = client.get("/board/alerts").text
    alert_id = re.findall(r'href="/board/alerts/(al_[0-9a-f]{24})"', alerts)[0]
    refused = client.post(f"/board/alerts/{alert_id}/acknowledge", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert "Your form has expired" in refused.text
    page = client.get(f"/board/alerts/{alert_id}").text
    done = client.post(f"/board/alerts/{alert_id}/acknowledge", data={"csrf_token": csrf_of(page)})
    assert done.status_code == 303
    assert "Alert acknowledged" in client.get(done.headers["location"]).text


def test_an_authority_sees_what_it_hosts_or_places_at_and_nothing_else(client: TestClient) -> None:
    sign_in(client, key_for(PLACER_A))
    board = client.get("/board").text
    assert LOC_A in board and LOC_B not in board and LOC_C not in board
    assert client.get(f"/board/locations/{LOC_B}").status_code == 404
    assert client.get(f"/board/organisations/{OTHER_PROVIDER}").status_code == 404
    assert client.get(f"/board/organisations/{PROVIDER}").status_code == 200
    csv = client.get("/board/export.csv").text
    assert LOC_A in csv and LOC_B not in csv
    client.cookies.clear()
    sign_in(client, key_for(THIRD))  # its placement there has ended
    assert client.get(f"/board/locations/{LOC_A}").status_code == 404
    assert "No locations match" in client.get("/board").text


def test_the_board_filters_and_counts_and_the_csv_follows_the_filters(client: TestClient) -> None:
    sign_in(client, OPERATOR_KEY)
    board = client.get("/board", params={"service_type": "home_care"}).text
    assert LOC_B in board and LOC_A not in board
    major = client.get("/board", params={"level": "major"}).text
    assert LOC_A in major and LOC_C in major and LOC_B not in major
    # Newest change first: LOC_C changed a day ago, LOC_A two days ago.
    assert major.index(LOC_C) < major.index(LOC_A)
    csv = client.get("/board/export.csv", params={"level": "major"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == (
        "location_id,name,provider_id,provider_name,service_type,host_authority,host_authority_name,roles,level,"
        "changed_at"
    )
    assert len(lines) == 3
    assert f"{LOC_A},Rose & Crown House,{PROVIDER},{PROVIDER_NAME},care_home,{HOST},Surrey,,major," in csv.text
    assert f"{LOC_C},'+44 Care (Sunset Court),{OTHER_PROVIDER},,care_home,{PLACER_B},Birmingham,,major," in csv.text
    assert "'+44 Care (Sunset Court)" in csv.text  # not a formula in a spreadsheet
    assert client.get("/board", params={"level": "catastrophic"}).status_code == 422
    # The form's selects left at "Any ..." send empty values: no filter, not an error.
    everything = client.get("/board", params={"role": "", "service_type": "", "level": "", "organisation": ""})
    assert everything.status_code == 200 and LOC_A in everything.text and LOC_B in everything.text


def test_board_pages_carry_the_security_headers(client: TestClient) -> None:
    page = client.get("/board/sign-in")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'sha256-" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert client.get("/board/static/govuk/govuk-frontend.min.css").status_code == 200
    assert client.get("/").headers["location"] == "/board"


def test_a_location_page_shows_the_chart_the_evidence_and_the_actions_never_content(client: TestClient) -> None:
    sign_in(client, key_for(HOST))
    page = client.get(f"/board/locations/{LOC_A}").text
    assert "<svg" in page and 'role="img"' in page and "2 changes of level" in page
    assert "Safeguarding concern" in page and "from Surrey Police intelligence" in page and POLICE not in page
    assert "Contact the police" in page
    assert "Elm Lodge" not in page  # the organisation's other location is hosted elsewhere: not HOST's to see
    assert "ev-1-100000001" not in page  # event ids are references, not for the page
    # Its alerts by when the level changed (newest first), not when they were recorded.
    major, moderate = page.index("escalation to Major"), page.index("escalation to Moderate")
    assert major < moderate
    decided = (datetime.now(UTC) - timedelta(days=20)).strftime("%-d %B %Y")
    assert f"{decided}, " in page[moderate - 60 : moderate]


def _step(client: TestClient, process_url: str, step: str, day: datetime, lead: str, outcome: str = "") -> int:
    page = client.get(process_url).text
    answer = client.post(
        f"{process_url}/steps",
        data={
            "csrf_token": csrf_of(page),
            "step": step,
            "held_on-day": str(day.day),
            "held_on-month": str(day.month),
            "held_on-year": str(day.year),
            "lead": lead,
            "outcome": outcome,
        },
    )
    return answer.status_code


def test_a_provider_concerns_process_follows_the_six_steps_and_is_audited(client: TestClient) -> None:
    sign_in(client, key_for(HOST))
    location = client.get(f"/board/locations/{LOC_A}").text
    opened = client.post(f"/board/locations/{LOC_A}/concerns", data={"csrf_token": csrf_of(location)})
    assert opened.status_code == 303
    url = opened.headers["location"]
    today = datetime.now(UTC)
    assert _step(client, url, "initial_meeting", today, "safeguarding") == 400  # the decision comes first
    assert _step(client, url, "decision", today + timedelta(days=2), "safeguarding") == 400  # not in the future
    assert _step(client, url, "decision", today - timedelta(days=10), "safeguarding") == 303
    assert _step(client, url, "initial_meeting", today - timedelta(days=11), "commissioning") == 400  # before step 1
    assert _step(client, url, "initial_meeting", today - timedelta(days=9), "commissioning") == 303
    assert _step(client, url, "findings_meeting", today - timedelta(days=6), "commissioning") == 303
    assert _step(client, url, "update_meeting", today - timedelta(days=4), "contracts") == 303
    assert _step(client, url, "update_meeting", today - timedelta(days=3), "contracts") == 303
    assert _step(client, url, "quality_assurance", today - timedelta(days=2), "contracts") == 303
    assert _step(client, url, "formal_closure", today, "commissioning") == 400  # needs the outcome
    assert _step(client, url, "formal_closure", today, "commissioning", "improved") == 303
    page = client.get(url).text
    assert "Improvements made and sustained" in page and "Record the next step" not in page
    assert page.count(f"by {HOST}:{HOST.lower()}") >= 8  # every step audited with who
    # Another authority cannot see it, even by URL.
    client.cookies.clear()
    sign_in(client, key_for(PLACER_A))
    assert client.get(url).status_code == 404


def test_a_mute_from_the_page_follows_the_apis_rules(client: TestClient, runtime: AlertRuntime) -> None:
    sign_in(client, key_for(PLACER_A))
    alerts = client.get("/board/alerts").text
    alert_id = re.findall(r'href="/board/alerts/(al_[0-9a-f]{24})"', alerts)[0]
    page = client.get(f"/board/alerts/{alert_id}").text
    too_long = client.post(f"/board/alerts/{alert_id}/mute", data={"csrf_token": csrf_of(page), "hours": "9999"})
    assert too_long.status_code == 400 and "at most 2160 hours" in too_long.text
    # An authority key mutes for its own authority, whatever the form says.
    done = client.post(
        f"/board/alerts/{alert_id}/mute", data={"csrf_token": csrf_of(page), "hours": "24", "authority": HOST}
    )
    assert done.status_code == 303
    [mute] = runtime.store.list_mutes(None, datetime.now(UTC).timestamp())
    assert (mute["authority"], mute["location_id"], mute["created_by"]) == (PLACER_A, LOC_A, f"{PLACER_A}:e06000036")
    client.cookies.clear()
    sign_in(client, OPERATOR_KEY)
    page = client.get(f"/board/alerts/{alert_id}").text
    stranger = client.post(
        f"/board/alerts/{alert_id}/mute", data={"csrf_token": csrf_of(page), "hours": "24", "authority": THIRD}
    )
    assert stranger.status_code == 400 and "Select an authority that received this alert" in stranger.text


def test_an_organisation_change_shows_on_the_board_and_the_organisation_page(
    client: TestClient, runtime: AlertRuntime
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    doc = change_doc(LOC_A, PROVIDER, 1, "none", "major", now, scope="organisation", locations=[LOC_A, LOC_B])
    doc.update(change_id=f"{PROVIDER}:1", location_id=None)
    store_changes(runtime, doc)
    sign_in(client, key_for(HOST))
    board = client.get("/board").text
    organisations = board[board.index("Organisations by level") :]
    assert PROVIDER in organisations and "govuk-tag--red" in organisations
    page = client.get(f"/board/organisations/{PROVIDER}").text
    assert "A concern related to serious abuse or neglect" in page and "Rose &amp; Crown House" in page
    assert "Elm Lodge" not in page  # hosted by another authority, no placement of HOST's


def test_over_https_the_cookie_is_secure(runtime: AlertRuntime) -> None:
    app = create_app(runtime, run_background=False)
    with TestClient(app, base_url="https://board.example", follow_redirects=False) as client:
        form = client.get("/board/sign-in")
        answer = client.post(
            "/board/sign-in", data={"key": OPERATOR_KEY, "next": "/board", "csrf_token": csrf_of(form.text)}
        )
        cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and "caresignal_board=" in v)
        assert "Secure" in cookie


def test_a_key_taken_out_of_the_key_file_ends_its_sessions(tmp_path: Path, runtime: AlertRuntime) -> None:
    keys = tmp_path / "watched-keys.toml"
    write_keys(keys)
    runtime.keys = AlertKeys.watch(keys, interval_s=0.0)
    with TestClient(create_app(runtime, run_background=False), follow_redirects=False) as client:
        sign_in(client, key_for(HOST))
        assert client.get("/board").status_code == 200
        keys.write_text("\n".join(b for b in keys.read_text().split("\n\n") if HOST.lower() not in b))
        answer = client.get("/board")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/board/sign-in")


def test_a_change_from_loading_history_moves_the_board_though_nobody_is_sent_it(
    client: TestClient, runtime: AlertRuntime
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    [alert_id] = store_changes(runtime, change_doc(LOC_B, PROVIDER, 2, "minor", "major", now, backfill=True))
    assert runtime.store.get_alert(alert_id)["state"] == "history"
    sign_in(client, OPERATOR_KEY)
    major = client.get("/board", params={"level": "major"}).text
    assert LOC_B in major
    page = client.get(f"/board/locations/{LOC_B}").text
    assert "History loaded" in page and "Nothing was sent: a change from loading history" in page
    # An older change (a lower sequence) arriving late does not move the level back.
    late = change_doc(LOC_B, PROVIDER, 1, "none", "minor", now - timedelta(days=5), change_id=f"{LOC_B}:late")
    store_changes(runtime, late)
    assert LOC_B in client.get("/board", params={"level": "major"}).text


def test_guessing_keys_is_slowed_down(client: TestClient) -> None:
    token = csrf_of(client.get("/board/sign-in").text)
    for attempt in range(10):
        wrong = client.post(
            "/board/sign-in", data={"key": f"cs_guess_{attempt}", "next": "/board", "csrf_token": token}
        )
        assert wrong.status_code == 401
    stopped = client.post("/board/sign-in", data={"key": OPERATOR_KEY, "next": "/board", "csrf_token": token})
    assert stopped.status_code == 429 and "Too many attempts: try again in 5 minutes" in stopped.text


def test_pages_name_the_organisation_the_authorities_and_the_sources_with_their_codes(
    client: TestClient, runtime: AlertRuntime
) -> None:
    sign_in(client, key_for(HOST))
    page = client.get(f"/board/locations/{LOC_A}").text
    assert f'<a class="govuk-link" href="/board/organisations/{PROVIDER}">{PROVIDER_NAME}</a>' in page
    assert f'<span class="govuk-body-s">{PROVIDER}</span>' in page  # the ID beside it, for a search
    assert f"Surrey ({HOST})" in page  # the host authority, from the ONS list
    assert f"Signed in as {HOST.lower()}, Surrey ({HOST})" in page
    board = client.get("/board").text
    assert f">{PROVIDER_NAME}</a>" in board
    assert f'<option value="{PROVIDER}">{PROVIDER_NAME} ({PROVIDER})</option>' in board
    organisation = client.get(f"/board/organisations/{PROVIDER}").text
    assert f'<h1 class="govuk-heading-l">{PROVIDER_NAME}</h1>' in organisation
    assert f"Provider organisation {PROVIDER}" in organisation
    # An authority record names it as the authority calls itself, before the ONS list.
    runtime.directory.authority_names[HOST] = "Surrey County Council"
    assert f"Surrey County Council ({HOST})" in client.get(f"/board/locations/{LOC_A}").text
    # The authorities an operator may mute an alert for, by name.
    client.cookies.clear()
    sign_in(client, OPERATOR_KEY)
    alerts = client.get("/board/alerts").text
    alert_id = re.findall(
        rf'href="/board/alerts/(al_[0-9a-f]{{24}})">[^<]*<span[^>]*> al_[0-9a-f]{{24}}</span></a></td>\s*<td class="govuk-table__cell"><a class="govuk-link" href="/board/locations/{LOC_A}"',
        alerts,
    )[0]
    alert = client.get(f"/board/alerts/{alert_id}").text
    assert f'<option value="{PLACER_A}">Bracknell Forest ({PLACER_A})</option>' in alert
    assert f'<option value="{HOST}">Surrey County Council ({HOST})</option>' in alert


def test_without_a_known_name_a_location_or_organisation_shows_its_id(
    client: TestClient, runtime: AlertRuntime
) -> None:
    unnamed = "1-100000009"
    put_location(runtime, unnamed, OTHER_PROVIDER, HOST, None)
    sign_in(client, OPERATOR_KEY)
    board = client.get("/board").text
    assert f'<a class="govuk-link" href="/board/locations/{unnamed}">{unnamed}</a>' in board
    assert f'<a class="govuk-link" href="/board/organisations/{OTHER_PROVIDER}">{OTHER_PROVIDER}</a>' in board
    assert f'<option value="{OTHER_PROVIDER}">{OTHER_PROVIDER}</option>' in board
    page = client.get(f"/board/locations/{unnamed}").text
    assert f'<h1 class="govuk-heading-l">Location {unnamed}</h1>' in page
    organisation = client.get(f"/board/organisations/{OTHER_PROVIDER}").text
    assert f'<h1 class="govuk-heading-l">Organisation {OTHER_PROVIDER}</h1>' in organisation
    # An organisation-level alert about it says so too.
    now = datetime.now(UTC).replace(microsecond=0)
    doc = change_doc(LOC_C, OTHER_PROVIDER, 1, "none", "major", now, scope="organisation", locations=[LOC_C])
    doc.update(change_id=f"{OTHER_PROVIDER}:1", location_id=None)
    [alert_id] = store_changes(runtime, doc)
    assert f"Risk raised: Organisation {OTHER_PROVIDER}</h1>" in client.get(f"/board/alerts/{alert_id}").text


BIG = "1-000999000"
BIG_NAME = "Hazel National Care Ltd"


def big_group(runtime: AlertRuntime, size: int, raised: int) -> list[str]:
    """`size` locations of one organisation, all hosted by HOST; the first `raised` of them
    moderate (the first one major): the ids, in order."""
    ids = [f"1-2000{n:05d}" for n in range(size)]
    for n, location_id in enumerate(ids):
        put_location(runtime, location_id, BIG, HOST, f"Hazel House {n:03d}", provider_name=BIG_NAME)
    now = datetime.now(UTC).replace(microsecond=0)
    store_changes(
        runtime,
        *(
            change_doc(loc, BIG, 1, "none", "major" if n == 0 else "moderate", now - timedelta(hours=n + 1))
            for n, loc in enumerate(ids[:raised])
        ),
    )
    return ids


def test_a_location_page_summarises_a_large_organisation_and_leaves_the_list_to_its_page(
    client: TestClient, runtime: AlertRuntime
) -> None:
    ids = big_group(runtime, 120, raised=14)
    sign_in(client, key_for(HOST))
    page = client.get(f"/board/locations/{ids[-1]}").text
    section = page[page.index("The organisation's other locations") : page.index("Alerts about this location")]
    assert f"{BIG_NAME} runs 119 other locations that you can see." in section
    counts = re.findall(r'board-count__number">(\d+)</span> (\w+)', section)
    assert counts == [("1", "Major"), ("13", "Moderate"), ("0", "Minor"), ("105", "None")]
    assert f'href="/board/organisations/{BIG}?level=major"' in section
    # The raised ones, most severe first, at most ten; none of the rest by name.
    listed = re.findall(r"Hazel House (\d{3})", section)
    assert listed[0] == "000" and len(listed) == 10
    assert "the 10 most severe of 14" in section
    assert f'<a class="govuk-link" href="/board/organisations/{BIG}">All 120 locations of {BIG_NAME}' in section


def test_the_organisation_page_pages_its_locations_and_filters_them_by_level(
    client: TestClient, runtime: AlertRuntime
) -> None:
    big_group(runtime, 120, raised=14)
    sign_in(client, key_for(HOST))
    url = f"/board/organisations/{BIG}"
    first = client.get(url).text
    assert len(re.findall(r"Hazel House \d{3}</a>", first)) == 50
    assert "most severe first (1 to 50 of 120)" in first
    # Major, then moderate (newest change first), then the rest by name.
    assert first.index("Hazel House 000") < first.index("Hazel House 001") < first.index("Hazel House 013")
    assert first.index("Hazel House 013") < first.index("Hazel House 014") and "Hazel House 119" not in first
    assert f'href="{url}?page=2" rel="next"' in first and 'aria-current="page">1</a>' in first
    last = client.get(url, params={"page": 3}).text
    assert len(re.findall(r"Hazel House \d{3}</a>", last)) == 20 and "(101 to 120 of 120)" in last
    assert f'href="{url}?page=2" rel="prev"' in last and 'rel="next"' not in last
    assert client.get(url, params={"page": 4}).status_code == 404
    assert client.get(url, params={"page": 0}).status_code == 422
    moderate = client.get(url, params={"level": "moderate"}).text
    assert len(re.findall(r"Hazel House \d{3}</a>", moderate)) == 13
    assert "Hazel House 000" not in moderate and "govuk-pagination" not in moderate
    assert client.get(url, params={"level": "grave"}).status_code == 422


def test_the_board_pages_its_locations_keeping_the_filters(client: TestClient, runtime: AlertRuntime) -> None:
    big_group(runtime, 150, raised=3)
    sign_in(client, OPERATOR_KEY)
    first = client.get("/board").text
    assert "Locations, newest change first (1 to 100 of 153)" in first
    second = client.get("/board", params={"page": 2, "service_type": "care_home"}).text
    assert "(101 to 152 of 152)" in second  # LOC_B is home care
    assert 'href="/board?service_type=care_home" rel="prev"' in second
    assert client.get("/board", params={"page": 3}).status_code == 404
