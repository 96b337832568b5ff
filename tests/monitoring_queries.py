"""The queries the monitoring set-up depends on, read from its files: the recording and
alerting rules (deploy/prometheus/rules) and the Grafana dashboards (deploy/grafana).
The tests prove these, so a new rule or panel is covered without touching them."""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


@dataclass(frozen=True)
class Rule:
    name: str  # the recorded series, or the alert's name
    expr: str
    alert: bool


def rules() -> list[Rule]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                alert = "alert" in rule
                found.append(Rule(rule["alert"] if alert else rule["record"], rule["expr"].strip(), alert))
    return found


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for panel in panels:
        flat.append(panel)
        flat.extend(_panels(panel.get("panels", [])))  # panels inside a collapsed row
    return flat


def dashboard_queries() -> list[PanelQuery]:
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                found.append(PanelQuery(dashboard["title"], panel["title"], target["expr"]))
    return found


# PromQL words that look like metric names but are not.
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?<![\w:\"])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])\s*(\{[^}]*\})?(?!\s*\()")


def selectors(expr: str) -> list[str]:
    """The series selectors of a PromQL expression (`name{matchers}`), without functions,
    keywords, grouping labels, durations or numbers."""
    text = _GROUPING.sub(" ", expr)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\boffset\s+\w+", " ", text)
    found = []
    for match in _SELECTOR.finditer(text):
        name, matchers = match.group(1), match.group(2) or ""
        if name in _KEYWORDS or re.fullmatch(r"\d+(?:\.\d+)?(?:e\d+)?|Inf|NaN", name):
            continue
        found.append(name + matchers)
    return list(dict.fromkeys(found))
