"""`caresignal policy compare`: the pure comparison on hand-made changes, and the command
on a small simulated history, from a file and from the real broker."""

import json
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from schemas.clock import TIME_SIGNAL_KEY, TimeSignal
from schemas.directory import Location
from schemas.events import EventParser
from schemas.examples import example_event
from schemas.risk import Level
from schemas.topics import Topics
from services.broker.settings import KafkaSettings
from services.cli import main
from services.evaluation.changes import Change, Scope
from services.evaluation.compare_report import side_text
from services.evaluation.policy_compare import Crossings, compare, level_days, steps
from services.evaluation.what_if import what_if
from services.scoring.policy import DEFAULT_POLICY, parse_policy

T0 = datetime(2025, 1, 1, tzinfo=UTC)
END = T0 + timedelta(days=10)
A = "1-101234567"
B = "1-101234563"


def change(
    subject: str, day: float, old: Level, new: Level, *rules: str, seq: int = 1, scope: Scope = "location"
) -> Change:
    return Change(scope, subject, T0 + timedelta(days=day), seq, old, new, tuple(rules))


# --- the comparison, pure ---------------------------------------------------------------


def test_the_same_changes_make_no_difference() -> None:
    changes = [change(A, 1, Level.none, Level.moderate, "p", seq=1), change(A, 4, Level.moderate, Level.none, seq=2)]
    result = compare(changes, list(changes), start=T0, end=END, locations=[A, B])
    assert result.differences == []
    s = result.summary
    assert (s.locations, s.locations_changed, s.locations_levels_differ, s.locations_reasons_differ) == (2, 1, 0, 0)
    assert s.escalations_old == s.escalations_new == Crossings(moderate_plus=1, major=0)
    assert s.escalations_added == s.escalations_removed == Crossings()
    assert s.days_old == s.days_new
    # A: 3 days at Moderate, 7 at none; B: 10 at none.
    assert s.days_old[Level.moderate] == pytest.approx(3.0)
    assert s.days_old[Level.none] == pytest.approx(17.0)


def test_an_earlier_escalation_is_a_level_difference_from_its_time_with_both_sides_rules() -> None:
    old = [change(A, 5, Level.none, Level.moderate, "missed_visits")]
    new = [change(A, 2, Level.none, Level.moderate, "missed_visits_lower")]
    result = compare(old, new, start=T0, end=END, locations=[A])
    [d] = result.differences
    assert (d.subject, d.kind, d.time) == (A, "levels", T0 + timedelta(days=2))
    assert (d.old_level, d.new_level) == (Level.none, Level.moderate)
    assert d.old_change is not None and d.old_change.rules == ("missed_visits",)
    assert d.old_change.time == T0 + timedelta(days=5)
    assert d.new_change is not None and d.new_change.rules == ("missed_visits_lower",)
    # The escalation moved; it was neither added nor removed.
    assert result.summary.escalations_added == result.summary.escalations_removed == Crossings()
    assert result.summary.days_new[Level.moderate] - result.summary.days_old[Level.moderate] == pytest.approx(3.0)


def test_escalations_the_new_policy_drops_are_removed_and_the_old_level_is_kept_then() -> None:
    old = [
        change(A, 1, Level.none, Level.minor, "series", seq=1),
        change(A, 3, Level.minor, Level.major, "serious", seq=2),
        change(B, 2, Level.none, Level.moderate, "pattern", seq=1),
    ]
    new = [change(A, 1, Level.none, Level.minor, "series", seq=1)]
    result = compare(old, new, start=T0, end=END, locations=[A, B])
    by_subject = {d.subject: d for d in result.differences}
    assert set(by_subject) == {A, B}
    a = by_subject[A]
    assert (a.time, a.old_level, a.new_level) == (T0 + timedelta(days=3), Level.major, Level.minor)
    assert a.old_change is not None and a.old_change.rules == ("serious",)
    assert a.new_change is None
    s = result.summary
    assert s.escalations_removed == Crossings(moderate_plus=2, major=1)
    assert s.escalations_added == Crossings()
    assert s.locations_levels_differ == 2


def test_same_levels_for_other_rules_is_a_reason_difference() -> None:
    old = [change(A, 1, Level.none, Level.moderate, "pattern_a")]
    new = [change(A, 1, Level.none, Level.moderate, "pattern_b")]
    [d] = compare(old, new, start=T0, end=END).differences
    assert d.kind == "reasons"
    assert (d.old_level, d.new_level) == (Level.moderate, Level.moderate)
    result = compare(old, new, start=T0, end=END)
    assert (result.summary.locations_levels_differ, result.summary.locations_reasons_differ) == (0, 1)


def test_changes_at_one_instant_are_one_step_and_a_rise_and_fall_together_none() -> None:
    flicker = [change(A, 1, Level.none, Level.minor, "x", seq=1), change(A, 1, Level.minor, Level.none, seq=2)]
    assert steps(flicker) == []
    assert compare(flicker, [], start=T0, end=END).differences == []
    two = [change(A, 1, Level.none, Level.minor, "x", seq=1), change(A, 1, Level.minor, Level.major, "y", seq=2)]
    [step] = steps(two)
    assert (step.level, step.change.rules) == (Level.major, ("y",))


def test_level_days_are_clipped_to_the_period() -> None:
    path = steps([change(A, -2, Level.none, Level.major, "t", seq=1), change(A, 20, Level.major, Level.none, seq=2)])
    days = level_days(path, T0, END)
    assert days[Level.major] == pytest.approx(10.0)
    assert sum(days.values()) == pytest.approx(10.0)


def test_organisations_are_compared_apart_from_locations() -> None:
    old = [change("1-000111222", 3, Level.none, Level.moderate, "several", scope="organisation")]
    result = compare(old, [], start=T0, end=END, locations=[A])
    [d] = result.differences
    assert d.scope == "organisation"
    s = result.summary
    assert (s.organisations_levels_differ, s.locations_levels_differ, s.locations) == (1, 0, 1)
    assert s.escalations_removed == Crossings()  # counted for locations only
    assert s.days_old[Level.none] == pytest.approx(10.0)


# --- the command on a simulated history --------------------------------------------------

SIMULATION = ["--seed", "1", "--locations", "6", "--days", "60"]
# A single-event rule that fires in the simulated history's first weeks (the own-history
# rules of the default need more history than these 60 days give).
CHANGED_RULE = "agency_staff_poor_induction"


def changed_policy(folder: Path) -> Path:
    """The default policy with one threshold raised out of reach, under a new version."""
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    [trigger] = [t for t in raw["triggers"] if t["id"] == CHANGED_RULE]
    for condition in trigger["when"]:
        condition["agency_staff_share"] = {"gte": 0.99}
    raw["version"] = "what-if-test"
    path = folder / "changed.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    args = ["simulate", *SIMULATION, "--to", "file", "--out", str(folder / "events.ndjson")]
    assert main([*args, "--directory", str(folder), "--truth", str(folder / "truth.json")]) == 0
    changed_policy(folder)
    return folder


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["policy", "compare", *args, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_a_raised_threshold_shows_which_locations_differ_and_by_which_rule(
    history: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, new = history / "events.ndjson", history / "changed.yaml"
    out = history / "what-if.md"
    assert main(["policy", "compare", str(DEFAULT_POLICY), str(new), "--events", str(events), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "what-if-test" in table and CHANGED_RULE in table
    assert CHANGED_RULE in out.read_text()

    result = run_json([str(DEFAULT_POLICY), str(new), "--events", str(events)], capsys)
    assert result["new"]["version"] == "what-if-test"
    assert result["history"]["events"] > 100
    differences = result["differences"]
    assert differences and result["summary"]["locations_levels_differ"] >= 1
    # Where they part, the old policy raised the location by the changed rule; the new one did not.
    old_rules = [d["old_change"]["rules"] for d in differences if d["old_change"]]
    assert any(CHANGED_RULE in rules for rules in old_rules)
    assert not any(CHANGED_RULE in (d["new_change"] or {}).get("rules", []) for d in differences)
    for d in differences:
        assert d["scope"] in ("location", "organisation") and d["subject"].startswith("1-")
        assert (d["old_level"] != d["new_level"]) == (d["kind"] == "levels")
    days = result["summary"]["location_days_old"]
    assert sum(days.values()) == pytest.approx(sum(result["summary"]["location_days_new"].values()))
    assert days["moderate"] > result["summary"]["location_days_new"]["moderate"]


def test_a_policy_compared_with_itself_differs_nowhere(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = str(history / "events.ndjson")
    result = run_json([str(DEFAULT_POLICY), str(DEFAULT_POLICY), "--events", events], capsys)
    assert result["differences"] == []
    s = result["summary"]
    assert s["locations_levels_differ"] == s["locations_reasons_differ"] == 0
    assert s["locations_changed"] >= 1  # the history does raise levels: "no difference" is not "nothing happened"
    assert main(["policy", "compare", str(DEFAULT_POLICY), str(DEFAULT_POLICY), "--events", events]) == 0
    assert "No differences" in capsys.readouterr().out


def test_an_invalid_policy_exits_2_naming_its_line(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (history / "changed.yaml").read_text().replace("enter_count: 2", "enter_count: 1", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = text.splitlines().index("  enter_count: 1") + 1
    code = main(["policy", "compare", str(DEFAULT_POLICY), str(bad), "--events", str(history / "events.ndjson")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{bad}:{line}:" in err and "enter_count" in err


def test_unreadable_history_exits_2_with_the_reason(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = str(DEFAULT_POLICY)
    lonely = tmp_path / "events.ndjson"
    lonely.write_text((history / "events.ndjson").read_text())
    assert main(["policy", "compare", policy, policy, "--events", str(lonely)]) == 2
    assert "--directory" in capsys.readouterr().err

    not_events = tmp_path / "not.ndjson"
    not_events.write_text((history / "events.ndjson").read_text().splitlines()[0] + "\nlocation_id,capacity\n")
    directory = str(history / "locations.csv")
    assert main(["policy", "compare", policy, policy, "--events", str(not_events), "--directory", directory]) == 2
    assert f"{not_events}: line 2: not JSON" in capsys.readouterr().err

    missing = str(tmp_path / "missing.ndjson")
    assert main(["policy", "compare", policy, policy, "--events", missing, "--directory", directory]) == 2
    assert "missing.ndjson: cannot read the events" in capsys.readouterr().err


def test_from_kafka_without_the_topics_exits_2_naming_the_topic(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", f"absent{uuid.uuid4().hex[:8]}")
    assert main(["policy", "compare", str(DEFAULT_POLICY), str(DEFAULT_POLICY), "--from-kafka"]) == 2
    err = capsys.readouterr().err
    assert "caresignal.directory.locations.v1 does not exist" in err


def test_from_kafka_reads_both_topics_to_their_end_and_skips_what_the_scorer_would(
    history: Path,
    test_kafka_settings: KafkaSettings,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CARESIGNAL_TOPIC_PREFIX", test_kafka_settings.topic_prefix)
    assert main(["simulate", *SIMULATION, "--to", "kafka", "--truth", str(history / "kafka-truth.json")]) == 0
    # What the scorer does not score: a time signal, an event breaking the contract, and
    # one keyed by another location than its subject.
    first = json.loads((history / "events.ndjson").read_text().splitlines()[0])
    producer = KafkaProducer(bootstrap_servers=test_kafka_settings.bootstrap_servers, acks="all")
    signal = TimeSignal(time=datetime(2025, 1, 2, tzinfo=UTC)).model_dump_json().encode()
    producer.send(topics.events, key=TIME_SIGNAL_KEY, value=signal, partition=0)
    producer.send(topics.events, key=first["subject"].encode(), value=b'{"specversion": "1.0"}')
    producer.send(topics.events, key=b"1-999999999", value=json.dumps({**first, "id": "mismatch-1"}).encode())
    producer.flush()
    producer.close()

    new = str(history / "changed.yaml")
    from_kafka = run_json([str(DEFAULT_POLICY), new, "--from-kafka"], capsys)
    from_file = run_json([str(DEFAULT_POLICY), new, "--events", str(history / "events.ndjson")], capsys)
    assert topics.events in from_kafka["history"]["source"]
    assert from_kafka["history"]["skipped"] == {"invalid_event": 1, "key_mismatch": 1, "time_signal": 1}
    assert from_kafka["history"]["events"] == from_file["history"]["events"]
    assert from_kafka["summary"]["locations"] == from_file["summary"]["locations"]

    def where(result: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(d["subject"], d["kind"], d["time"]) for d in result["differences"]]

    # The producer sent the file's events in its order; the topic gives the same history.
    assert where(from_kafka) == where(from_file)
    assert any(CHANGED_RULE in (d["old_change"] or {}).get("rules", []) for d in from_kafka["differences"])


def test_the_readme_example_runs_and_shows_the_changed_rule(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme.split("\n## Risk levels\n", 1)[1].split("\n## ", 1)[0], re.S)
    [example] = [b for b in blocks if "policy compare" in b]
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example.replace("/tmp/cs", str(tmp_path))],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    # The variant differs from the default on exactly the holds the example changes.
    assert (tmp_path / "my-area.yaml").read_text().count("hold_days: 30") == 2 + DEFAULT_POLICY.read_text().count(
        "hold_days: 30"
    )
    # A location the default holds at Moderate falls sooner under the variant.
    assert "Minor (falls from Moderate)" in run.stdout and "my-area-1" in run.stdout


HOLD_POLICY = """
version: hold-{hold}
retention_days: 400
out_of_order_tolerance_minutes: 60
min_days_at_level: 14
levels:
  major: {{meaning: Unsafe., actions: [{{action: Act, lead: Safeguarding}}]}}
  moderate: {{meaning: At risk., actions: [{{action: Act, lead: Safeguarding}}]}}
  minor: {{meaning: Safe., actions: [{{action: Act, lead: Contracts}}]}}
triggers:
  - id: serious_abuse_or_neglect
    description: A concern related to serious abuse or neglect
    level: major
    hold_days: {hold}
    when: [{{type: safeguarding_concern, serious: true}}]
"""


def test_what_if_replays_both_policies_and_lets_the_clock_run_to_until() -> None:
    home = Location(
        location_id=B, service_type="care_home", capacity=40, provider_id="1-000111222", host_authority="E10000030"
    )
    data = {"abuse_type": "neglect", "serious": True, "linked_death": False}
    raw = example_event("safeguarding_concern", event_id="sg-1", location_id=B, time=T0, data=data)
    events = [EventParser(future_tolerance=timedelta(days=3650)).parse_obj(raw)]
    old, new = (parse_policy(HOLD_POLICY.format(hold=hold)) for hold in (90, 30))

    # Up to the last event both hold the Major it raised: nothing differs yet.
    assert what_if({B: home}, events, old, new).comparison.differences == []

    result = what_if({B: home}, events, old, new, until=T0 + timedelta(days=120))
    [d] = result.comparison.differences
    assert (d.time, d.old_level, d.new_level) == (T0 + timedelta(days=30), Level.major, Level.none)
    assert d.old_change is not None and d.old_change.time == T0 + timedelta(days=90)
    days_old, days_new = result.comparison.summary.days_old, result.comparison.summary.days_new
    assert (days_old[Level.major], days_new[Level.major]) == (pytest.approx(90.0), pytest.approx(30.0))
    assert side_text(d.new_level, d.new_change, d.time) == "none (falls from Major)"
    assert side_text(d.old_level, d.old_change, d.time) == "Major; falls to none on 2025-04-01 00:00"
