"""The risk board in a real browser: Debian's chromium driven by Playwright, against the
alerts service process, the real broker (the test's own topics: directory records and
risk changes published to them), real webhook receivers and SMTP. axe-core (from
node_modules) checks every page against WCAG 2.2 AA; one test saves the screenshots
that docs/board.md shows."""

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from playwright.sync_api import Browser, Page, expect, sync_playwright

from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from tests.alert_peers import HOST, OPERATOR_KEY, PLACER_A, PLACER_B, THIRD, Peers, key_for, make_alerts
from tests.board_data import change_doc, key_file_entry
from tests.service_process import AlertsProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

LOC_A, LOC_B, LOC_C = "1-100000001", "1-100000002", "1-100000003"
PROVIDER, OTHER_PROVIDER = "1-000111222", "1-000333444"
PROVIDER_NAME = "Rose Care Group Ltd"
POLICE = "urn:caresignal:source:police"


class Publisher:
    def __init__(self, kafka: KafkaSettings, topics: Topics) -> None:
        self.topics = topics
        self.producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")

    def send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self.producer.send(topic, key=key.encode(), value=json.dumps(value).encode())
        self.producer.flush()

    def location(
        self,
        location_id: str,
        provider: str,
        host: str,
        name: str,
        kind: str = "care_home",
        provider_name: str | None = None,
        flush: bool = True,
    ) -> None:
        record = {
            "location_id": location_id,
            "provider_id": provider,
            "service_type": kind,
            "capacity": 40,
            "host_authority": host,
            "name": name,
            "provider_name": provider_name,
        }
        if flush:
            self.send(self.topics.locations, location_id, record)
        else:
            self.producer.send(self.topics.locations, key=location_id.encode(), value=json.dumps(record).encode())

    def authority(self, code: str, name: str) -> None:
        self.send(self.topics.authorities, code, {"ons_code": code, "name": name})

    def placement(self, authority: str, location_id: str) -> None:
        record = {"authority": authority, "location_id": location_id, "people_placed": 3, "status": "active"}
        self.send(self.topics.placements, f"{location_id}/{authority}", record)

    def change(self, doc: dict[str, Any]) -> None:
        self.send(self.topics.risk_changes, doc["location_id"], doc)


@pytest.fixture
def region(tmp_path: Path, test_kafka_settings: KafkaSettings, topics: Topics, peers: Peers) -> Iterator[AlertsProcess]:
    """Three locations of two organisations, their changes consumed by the alerts service."""
    feed = Publisher(test_kafka_settings, topics)
    feed.authority(HOST, "Surrey County Council")
    feed.location(LOC_A, PROVIDER, HOST, "Rose & Crown House", provider_name=PROVIDER_NAME)
    feed.location(LOC_B, PROVIDER, PLACER_B, "Elm Lodge", provider_name=PROVIDER_NAME)
    feed.location(LOC_C, OTHER_PROVIDER, HOST, "Willow Home Care", "home_care")
    feed.placement(PLACER_A, LOC_A)
    now = datetime.now(UTC).replace(microsecond=0)
    feed.change(change_doc(LOC_A, PROVIDER, 1, "none", "moderate", now - timedelta(days=30)))
    feed.change(change_doc(LOC_A, PROVIDER, 2, "moderate", "major", now - timedelta(days=3)))
    feed.change(change_doc(LOC_B, PROVIDER, 1, "none", "minor", now - timedelta(days=9)))
    feed.change(change_doc(LOC_C, OTHER_PROVIDER, 1, "none", "minor", now - timedelta(days=6)))
    alerts = make_alerts(tmp_path, test_kafka_settings, peers)
    # Messages link to the board of this very process.
    alerts.settings["CARESIGNAL_ALERTS_PUBLIC_URL"] = alerts.url
    # The ingest key file, whose entries name their sources.
    sources = tmp_path / "ingest-api-keys.toml"
    sources.write_text(key_file_entry("police", POLICE, "Surrey Police intelligence"))
    alerts.settings["CARESIGNAL_ALERTS_SOURCE_NAMES_FILE"] = str(sources)
    alerts.start()
    alerts.feed = feed  # type: ignore[attr-defined]
    try:
        wait_for_alerts(alerts, 4)
        yield alerts
    finally:
        alerts.stop()
        feed.producer.close()


def wait_for_alerts(alerts: AlertsProcess, n: int, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    while True:
        rows: list[dict[str, Any]] = httpx.get(
            f"{alerts.url}/v1/alerts", headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=10
        ).json()
        if len(rows) >= n:
            return rows
        assert datetime.now(UTC) < deadline, f"only {len(rows)} alerts of {n}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, javascript: bool = True) -> Page:
    # bypass_csp: only so that axe can be injected; the pages' own CSP is tested in-process.
    context = browser.new_context(
        bypass_csp=True, java_script_enabled=javascript, viewport={"width": 1100, "height": 900}
    )
    return context.new_page()


def no_violations(page: Page) -> None:
    """axe-core on the page as it stands: no WCAG 2.2 AA violation."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations"
        ".map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))",
        WCAG_TAGS,
    )
    assert violations == [], f"{page.url}: {json.dumps(violations, indent=1)}"


def sign_in(page: Page, key: str, check: bool = True) -> None:
    expect(page.get_by_role("heading", name="Sign in to the risk board")).to_be_visible()
    if check:  # axe needs JavaScript
        no_violations(page)
    page.get_by_label("Alerts API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def record_step(page: Page, step: str, day: datetime, lead: str, outcome: str | None = None) -> None:
    page.get_by_label("Step", exact=True).select_option(label=step)
    page.get_by_label("Day").fill(str(day.day))
    page.get_by_label("Month").fill(str(day.month))
    page.get_by_label("Year").fill(str(day.year))
    page.get_by_label("Lead role").select_option(label=lead)
    if outcome:
        page.get_by_label("Outcome").select_option(label=outcome)
    page.get_by_role("button", name="Record step").click()


def test_a_lead_follows_an_alert_to_closure_of_a_provider_concerns_process(
    region: AlertsProcess, browser: Browser, peers: Peers
) -> None:
    major = next(a for a in wait_for_alerts(region, 4) if a["new_level"] == "major")
    # The "Alert" link of the webhook the host received: sign in first, then the alert's page.
    got = peers.hooks[HOST].wait_for(lambda got: any(r.body["data"]["new_level"] == "major" for r in got), 30)
    link = next(r.body["data"]["links"]["alert"] for r in got if r.body["data"]["new_level"] == "major")
    assert link == f"{region.url}/board/alerts/{major['alert_id']}"
    page = new_page(browser)
    page.goto(link)
    sign_in(page, key_for(HOST))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rose & Crown House")
    no_violations(page)
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Alert acknowledged")).to_be_visible()
    no_violations(page)
    acknowledged = httpx.get(
        f"{region.url}/v1/alerts/{major['alert_id']}", headers={"Authorization": f"Bearer {key_for(HOST)}"}, timeout=10
    ).json()
    assert acknowledged["acknowledged_by"] == f"{HOST}:{HOST.lower()}"

    page.get_by_role("button", name="Start a provider concerns process").click()
    expect(page.get_by_text("Provider concerns process 1")).to_be_visible()
    no_violations(page)
    today = datetime.now(UTC)
    record_step(page, "Decision to start a provider concerns process", today - timedelta(days=3), "Safeguarding")
    record_step(page, "Initial meeting", today - timedelta(days=2), "Commissioning")
    # A date before the previous step: the error summary names the field.
    record_step(page, "Findings meeting and service improvement plan", today - timedelta(days=9), "Commissioning")
    expect(page.get_by_role("alert")).to_contain_text("on or after the previous step")
    # GOV.UK Frontend's JavaScript is initialised: the error summary takes the focus.
    expect(page.locator(".govuk-error-summary")).to_be_focused()
    no_violations(page)
    record_step(page, "Findings meeting and service improvement plan", today - timedelta(days=1), "Commissioning")
    record_step(page, "Update meeting", today - timedelta(days=1), "Contracts")
    record_step(page, "Quality assurance of the improvements", today, "Contracts")
    page.screenshot(path=str(SHOTS / "board-concerns.png"), full_page=True)
    record_step(
        page,
        "Formal closure (provider and regulator told in writing)",
        today,
        "Commissioning",
        "Improvements made and sustained",
    )
    expect(page.locator(".govuk-summary-list")).to_contain_text("Improvements made and sustained")
    expect(page.get_by_role("button", name="Record step")).to_have_count(0)
    no_violations(page)

    page.get_by_role("link", name="Board", exact=True).click()
    expect(page.get_by_role("heading", name="Risk board")).to_be_visible()
    no_violations(page)
    page.get_by_label("Level").select_option(label="Major")
    page.get_by_role("button", name="Apply filters").click()
    table = page.get_by_role("table").first
    expect(table).to_contain_text("Rose & Crown House")
    expect(table).not_to_contain_text("Willow Home Care")
    page.get_by_role("link", name="Clear filters").click()
    expect(page.get_by_role("table").first).to_contain_text("Willow Home Care")
    page.screenshot(path=str(SHOTS / "board.png"), full_page=True)

    # While the page is open, a new change arrives: the page shows it without a reload.
    later = datetime.now(UTC).replace(microsecond=0)
    region.feed.change(change_doc(LOC_C, OTHER_PROVIDER, 2, "minor", "moderate", later))  # type: ignore[attr-defined]
    expect(page.get_by_role("table").first.get_by_role("row").nth(1)).to_contain_text(
        "Willow Home Care", timeout=30_000
    )
    expect(page.get_by_role("table").first.get_by_role("row").nth(1)).to_contain_text("Moderate")

    page.get_by_role("link", name="Rose & Crown House").first.click()
    expect(page.get_by_role("heading", name="Rose & Crown House")).to_be_visible()
    expect(page.get_by_role("img", name="Risk level over time")).to_be_visible()
    expect(page.get_by_text("Contact the police")).to_be_visible()
    # Names, not codes: the organisation, the host authority (its record), the evidence's source.
    summary = page.locator(".govuk-summary-list")
    expect(summary.get_by_role("link", name=PROVIDER_NAME)).to_be_visible()
    expect(summary).to_contain_text(PROVIDER)  # the ID beside the name
    expect(summary).to_contain_text(f"Surrey County Council ({HOST})")
    expect(page.locator(".board-timeline").first).to_contain_text(
        "Safeguarding concern from Surrey Police intelligence"
    )
    expect(page.locator("main")).not_to_contain_text(POLICE)
    no_violations(page)
    page.screenshot(path=str(SHOTS / "board-location.png"), full_page=True)

    page.get_by_role("link", name=PROVIDER_NAME).first.click()
    expect(page.get_by_role("heading", name=PROVIDER_NAME)).to_be_visible()
    no_violations(page)
    page.get_by_role("link", name="Alerts", exact=True).click()
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    no_violations(page)
    page.get_by_role("link", name="Provider concerns").click()
    no_violations(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the risk board")).to_be_visible()
    page.goto(f"{region.url}/board")
    expect(page.get_by_role("heading", name="Sign in to the risk board")).to_be_visible()


def test_an_authority_cannot_reach_another_authoritys_location_by_url(region: AlertsProcess, browser: Browser) -> None:
    page = new_page(browser)
    page.goto(f"{region.url}/board/locations/{LOC_A}")
    sign_in(page, "cs_not_a_key")
    expect(page.get_by_role("alert")).to_contain_text("Enter a valid alerts API key")
    no_violations(page)
    sign_in(page, key_for(PLACER_B))
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    no_violations(page)
    response = page.goto(f"{region.url}/board/locations/{LOC_A}")
    assert response is not None and response.status == 404
    # Its own location is there, and the organisation's other location is not listed.
    page.goto(f"{region.url}/board")
    table = page.get_by_role("table").first
    expect(table).to_contain_text("Elm Lodge")
    expect(table).not_to_contain_text("Rose & Crown House")
    page.context.clear_cookies()
    page.goto(f"{region.url}/board/locations/{LOC_A}")
    sign_in(page, key_for(THIRD))
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


def test_without_javascript_a_lead_still_signs_in_filters_and_acknowledges(
    region: AlertsProcess, browser: Browser
) -> None:
    page = new_page(browser, javascript=False)
    page.goto(f"{region.url}/board/alerts")
    sign_in(page, key_for(PLACER_A), check=False)
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    page.get_by_role("link", name="Escalation").first.click()
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Alert acknowledged")).to_be_visible()
    page.goto(f"{region.url}/board?role=placing")
    expect(page.get_by_role("table").first).to_contain_text("Rose & Crown House")


def test_under_the_pages_own_content_security_policy_the_scripts_run_and_nothing_is_blocked(
    region: AlertsProcess, browser: Browser
) -> None:
    context = browser.new_context()  # no bypass: the CSP as served
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{region.url}/board/locations/{LOC_A}")
    expect(page.get_by_role("heading", name="Sign in to the risk board")).to_be_visible()
    page.get_by_label("Alerts API key").fill(key_for(HOST))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Rose & Crown House")).to_be_visible()
    # The template's inline script ran (allowed by its hash) and the module scripts loaded.
    expect(page.locator("body")).to_have_class(re.compile(r"\bjs-enabled\b.*\bgovuk-frontend-supported\b"))
    page.get_by_role("link", name="Board", exact=True).click()
    expect(page.get_by_role("heading", name="Risk board")).to_be_visible()
    page.wait_for_timeout(6000)  # one round of the live poll
    assert problems == []
    context.close()


def chart_text_overlaps(page: Page) -> list[str]:
    """Pairs of the chart's labels whose boxes, as Chromium lays the text out, meet; and any
    label outside the picture."""
    result: list[str] = page.evaluate(
        """() => {
          const svg = document.querySelector("svg.board-chart");
          const view = svg.viewBox.baseVal;
          const boxes = [...svg.querySelectorAll("text")].map(t => ({text: t.textContent, box: t.getBBox()}));
          const problems = [];
          for (const a of boxes) {
            if (a.box.x < view.x || a.box.x + a.box.width > view.x + view.width) problems.push("outside: " + a.text);
          }
          for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
            const a = boxes[i].box, b = boxes[j].box;
            if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height)
              problems.push(boxes[i].text + " meets " + boxes[j].text);
          }
          return problems;
        }"""
    )
    return result


BIG = "1-000999000"
BIG_NAME = "Hazel National Care Ltd"


def test_a_large_organisation_is_summarised_on_a_location_and_paged_on_its_own_page(
    region: AlertsProcess, browser: Browser
) -> None:
    """Sixty locations of one organisation in HOST's area: a location's page counts them by
    level and lists only the raised ones; the organisation's page pages them. The location
    opened has one change, stamped a day ahead of the clock as the demo's are: its chart's
    two dates used to print on top of each other."""
    feed: Publisher = region.feed  # type: ignore[attr-defined]
    ids = [f"1-3000{n:05d}" for n in range(60)]
    for n, location_id in enumerate(ids):
        feed.location(location_id, BIG, HOST, f"Hazel House {n:03d}", provider_name=BIG_NAME, flush=False)
    feed.producer.flush()
    now = datetime.now(UTC).replace(microsecond=0)
    levels = ["major", "moderate", "moderate", "minor", "minor", "minor"]
    for n, level in enumerate(levels):
        feed.change(change_doc(ids[n], BIG, 1, "none", level, now - timedelta(days=n + 1)))
    ahead = ids[59]
    feed.change(change_doc(ahead, BIG, 1, "none", "minor", now + timedelta(days=1)))
    wait_for_alerts(region, 4 + len(levels) + 1)

    page = new_page(browser)
    page.goto(f"{region.url}/board/locations/{ahead}")
    sign_in(page, key_for(HOST))
    expect(page.get_by_role("heading", name="Hazel House 059")).to_be_visible()
    assert chart_text_overlaps(page) == []
    section = page.locator("main")
    expect(section).to_contain_text(f"{BIG_NAME} runs 59 other locations that you can see.")
    raised = page.get_by_role("table", name="Raised above none")
    expect(raised.get_by_role("row")).to_have_count(1 + len(levels))
    expect(raised.get_by_role("row").nth(1)).to_contain_text("Hazel House 000")
    expect(section).not_to_contain_text("Hazel House 030")  # a location at none: counted, not listed
    no_violations(page)
    page.screenshot(path=str(SHOTS / "board-location-organisation.png"), full_page=True, clip=_section_clip(page))

    page.get_by_role("link", name=f"All 60 locations of {BIG_NAME}").click()
    expect(page.get_by_role("heading", name=BIG_NAME, level=1)).to_be_visible()
    table = page.get_by_role("table").first
    expect(table.get_by_role("row")).to_have_count(51)
    expect(table.get_by_role("row").nth(1)).to_contain_text("Hazel House 000")
    no_violations(page)
    pages = page.get_by_role("navigation", name="Pages of the organisation's locations")
    pages.get_by_role("link", name="Next").click()
    expect(page.get_by_role("table").first.get_by_role("row")).to_have_count(11)
    expect(page.get_by_role("link", name="Page 2")).to_have_attribute("aria-current", "page")
    no_violations(page)
    page.screenshot(path=str(SHOTS / "board-organisation.png"), full_page=True)
    page.get_by_role("link", name="Moderate locations", exact=False).click()
    expect(page.get_by_role("table").first.get_by_role("row")).to_have_count(3)
    no_violations(page)


def _section_clip(page: Page) -> dict[str, float]:
    """The box from the "other locations" heading to the next heading, in page coordinates."""
    scrolled: float = page.evaluate("() => window.scrollY")
    top = page.get_by_role("heading", name="The organisation's other locations").bounding_box()
    bottom = page.get_by_role("heading", name="Alerts about this location").bounding_box()
    assert top is not None and bottom is not None
    return {"x": 0, "y": top["y"] + scrolled - 20, "width": 1100, "height": bottom["y"] - top["y"] + 10}
