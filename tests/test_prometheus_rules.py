"""The Prometheus set-up checked by Prometheus's own tool: `promtool check config`,
`promtool check rules` and `promtool test rules` (the unit tests of every page with
synthetic series, deploy/prometheus/tests/*.yml). Plus what promtool cannot know: every
page has a unit test that makes it fire, pages read signals (recording rules), and every
dashboard panel reads them too, from the provisioned data source."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring_queries import (
    DASHBOARDS,
    GRAFANA,
    PROMETHEUS,
    RULE_FILES,
    RULE_TESTS,
    dashboard_queries,
    rules,
    selectors,
)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: it comes with the Debian package `prometheus` "
            "(`make setup`, or apt-get install prometheus)",
            pytrace=False,
        )
    return found


def run_promtool(*args: str | Path) -> str:
    done = subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def test_the_scrape_configuration_is_valid() -> None:
    run_promtool("check", "config", PROMETHEUS / "prometheus.yml")


def test_the_rules_are_valid() -> None:
    assert RULE_FILES
    run_promtool("check", "rules", *RULE_FILES)


def test_the_unit_tests_of_the_rules_pass() -> None:
    assert RULE_TESTS
    output = run_promtool("test", "rules", *RULE_TESTS)
    assert "SUCCESS" in output


def test_every_job_the_rules_name_is_scraped() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {"ingest", "scoring", "alerts"}


def test_every_page_has_a_unit_test_that_makes_it_fire() -> None:
    fired: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            fired |= {check["alertname"] for check in case.get("alert_rule_test", []) if check.get("exp_alerts")}
    pages = {rule.name for rule in rules() if rule.alert}
    assert pages, "no alerting rules found"
    assert pages - fired == set(), "pages with no unit test showing them fire"


def test_pages_read_signals_that_the_live_test_proves() -> None:
    # A page's raw counter may have no series while all is well (no 5xx yet): pages read
    # recording rules, which return 0 then, and which the live test proves return data.
    recorded = {rule.name for rule in rules() if not rule.alert}
    for rule in rules():
        if not rule.alert:
            continue
        for selector in selectors(rule.expr):
            name = selector.split("{", 1)[0]
            assert name in recorded or name == "up", f"{rule.name} reads {name}, not a recording rule"


def test_each_page_says_what_is_wrong_and_is_a_page() -> None:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["labels"]["severity"] == "page", rule["alert"]
                    assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_dashboard_is_provisioned_from_the_prometheus_data_source() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "caresignal.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    assert DASHBOARDS
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == source["uid"], panel["title"]
                assert panel["targets"], f"panel {panel['title']!r} has no query"


def test_the_dashboard_shows_rates_latencies_lag_levels_and_delivery_outcomes() -> None:
    exprs = " ".join(q.expr for q in dashboard_queries())
    for signal in (
        "caresignal:ingest_requests:rate5m",
        "caresignal:scoring_events:rate5m",
        "caresignal:ingest_produce_seconds:p99_rate5m",
        "caresignal:scoring_processing_seconds:p99_rate5m",
        "caresignal:alerts_delivery_latency_seconds:p99_rate15m",
        "caresignal:scoring_consumer_lag:sum",
        "caresignal:alerts_consumer_lag:sum",
        "caresignal:scoring_locations:sum",
        "caresignal:alerts_notifications:rate5m",
    ):
        assert signal in exprs, f"no panel shows {signal}"
