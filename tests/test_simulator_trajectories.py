"""Planted trajectories and the ground truth: what was planted shows in the events."""

import ast
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.simulator.config import SimulationConfig
from services.simulator.generator import EventStream, days_between
from services.simulator.run import build_world
from services.simulator.trajectories import Course, Kind
from services.simulator.truth import build_truth

# Two years of a region a little larger than the default, so that every kind is planted
# more than once and has history before and after its start.
CONFIG = SimulationConfig(seed=3, locations=300, days=730)
START = datetime(2025, 1, 1, tzinfo=UTC)
# The kinds whose template raises the signals of failing care broadly.
DECLINES = {Kind.gradual_decline.value, Kind.staffing_collapse.value, Kind.corporate_failure.value}
DECLINE_PEAKS = {"complaint_medication": 4.0, "whistleblowing": 3.0}
UNDER_REPORTING_PEAKS = {"notification_death": 0.02}


@pytest.fixture(scope="module")
def world() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    population, plan = build_world(CONFIG)
    stream = EventStream(CONFIG, population, plan)
    events = list(stream)
    return events, build_truth(CONFIG, population, plan, stream.labelled)


def _by_location(events: list[dict[str, Any]]) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    seen: set[tuple[str, str]] = set()
    out: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for event in events:
        if (event["source"], event["id"]) in seen:
            continue  # resent duplicates are one event
        seen.add((event["source"], event["id"]))
        out[event["subject"]].append((days_between(START, event["time"]), event))
    return out


def _short(event: dict[str, Any]) -> str:
    return str(event["type"]).split(".")[2]


def _rate(items: list[tuple[float, dict[str, Any]]], low: float, high: float, types: set[str]) -> float:
    """Events a day of these types in [low, high)."""
    if high <= low:
        return 0.0
    return sum(1 for t, e in items if low <= t < high and _short(e) in types) / (high - low)


def test_truth_lists_every_kind_with_a_start_inside_the_run(world: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    _, truth = world
    kinds = Counter(t["kind"] for t in truth["trajectories"])
    assert set(kinds) == {k.value for k in Kind}
    for trajectory in truth["trajectories"]:
        assert truth["start"] <= trajectory["start"] < truth["end"]
        assert trajectory["expected_min_level"] in {"minor", "moderate", "major"}
        if trajectory["recovered"]:
            assert trajectory["start"] < trajectory["end"] < trajectory["recovered"]
    organisation = next(t for t in truth["trajectories"] if t["scope"] == "organisation")
    assert len(organisation["locations"]) >= 3
    planted = {loc for t in truth["trajectories"] for loc in t["locations"]}
    assert not planted & set(truth["ordinary_locations"])
    assert len(planted) + len(truth["ordinary_locations"]) == truth["locations"]


def _peak_window(trajectory: dict[str, Any], location: str) -> tuple[float, float]:
    """From full stress to the easing, the service's closing or the end of the run."""
    shape = trajectory["shapes"][location]
    full = days_between(START, shape["rises_from"]) + shape["onset_days"]
    ends = [CONFIG.days] + [days_between(START, t) for t in (shape["eases_from"], trajectory["end"]) if t]
    return full, min(ends)


def test_declines_raise_the_concerns_of_failing_care(world: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    events, truth = world
    by_location = _by_location(events)
    concerns = {"complaint", "safeguarding_concern", "ccg_flag", "whistleblowing"}
    for kind, rise in ((Kind.gradual_decline.value, 2.0), (Kind.corporate_failure.value, 1.5)):
        before = after = 0.0
        for trajectory in (t for t in truth["trajectories"] if t["kind"] == kind):
            for loc in trajectory["locations"]:
                before += _rate(by_location[loc], 0, days_between(START, trajectory["start"]), concerns)
                after += _rate(by_location[loc], *_peak_window(trajectory, loc), concerns)
        # A slow decline: a 2-4x rise of concerns; a group's locations 3/4 of a lone rise.
        assert after > rise * before, kind
    # Ordinary locations, cut at the same point, stay level.
    failing = concerns | {"health_use"}
    ordinary_before = sum(_rate(by_location[loc], 0, 300, failing) for loc in truth["ordinary_locations"])
    ordinary_after = sum(_rate(by_location[loc], 450, CONFIG.days, failing) for loc in truth["ordinary_locations"])
    assert 0.8 < ordinary_after / ordinary_before < 1.25


def _rises_from(trajectory: dict[str, Any], location: str) -> float:
    return days_between(START, trajectory["shapes"][location]["rises_from"])


def test_a_staffing_collapse_at_an_agency_misses_ever_more_visits_and_may_close(
    world: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    events, truth = world
    by_location = _by_location(events)
    agencies = [
        t
        for t in truth["trajectories"]
        if t["kind"] == Kind.staffing_collapse.value and "visit_missed" in t["shapes"][t["subject"]]["signals"]
    ]
    assert agencies
    for trajectory in agencies:
        items = by_location[trajectory["subject"]]
        before = _rate(items, 0, days_between(START, trajectory["start"]), {"missed_visit"})
        # At full stress, until it eases or the agency closes (a closing one's last days).
        full, ends = _peak_window(trajectory, trajectory["subject"])
        after = _rate(items, full, ends if ends > full + 7 else full + 7, {"missed_visit"})
        assert after > 2.5 * before
        if trajectory["end"]:
            stop = days_between(START, trajectory["end"])
            ending = [e for t, e in items if abs(t - stop) < 1e-3 and _short(e) == "statutory_notification"]
            assert ending and ending[0]["data"]["category"] == "service_disruption"
            assert not [t for t, _ in items if t > stop + 8]  # the agency has closed


def test_an_under_reporter_falls_silent_while_others_still_speak(
    world: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    events, truth = world
    by_location = _by_location(events)
    reporters = [t for t in truth["trajectories"] if t["kind"] == Kind.under_reporting.value]
    assert reporters
    own = {"statutory_notification", "safeguarding_concern"}
    others = {"health_use", "complaint", "workforce", "contract_monitoring"}
    total_before = total_after = 0.0
    for trajectory in reporters:
        items = by_location[trajectory["subject"]]
        start = days_between(START, trajectory["start"])
        silent = start + trajectory["shapes"][trajectory["subject"]]["onset_days"]  # within weeks
        before, after = _rate(items, 0, start, own), _rate(items, silent, CONFIG.days, own)
        assert before > 0.02  # a home big enough for silence to show
        assert after < 0.25 * before  # a handful at most, from others' concerns
        assert _rate(items, silent, CONFIG.days, others) > 0.6 * _rate(items, 0, start, others)
        total_before, total_after = total_before + before, total_after + after
    assert total_after < 0.1 * total_before


def test_a_recovered_location_returns_to_its_base_rates(world: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    events, truth = world
    by_location = _by_location(events)
    # The concerns a slow decline raises (which other signals move differs between declines).
    signals = {"complaint", "safeguarding_concern", "ccg_flag", "whistleblowing"}
    before = worst = after = 0.0
    for trajectory in (t for t in truth["trajectories"] if t["kind"] == Kind.recovery.value):
        items = by_location[trajectory["subject"]]
        start, improve = days_between(START, trajectory["start"]), days_between(START, trajectory["end"])
        recovered = days_between(START, trajectory["recovered"])
        before += _rate(items, 0, start, signals)
        worst += _rate(items, improve - 45, improve, signals)
        after += _rate(items, recovered, CONFIG.days, signals)
    assert worst > 1.5 * before
    assert after < 1.3 * before


def test_a_staffing_collapse_starts_with_the_manager_leaving_and_agency_staff_rise(
    world: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    events, truth = world
    by_location = _by_location(events)
    collapses = [t for t in truth["trajectories"] if t["kind"] == Kind.staffing_collapse.value]
    left_first = 0
    for trajectory in collapses:
        items = by_location[trajectory["subject"]]
        start = days_between(START, trajectory["start"])
        left = [t for t, e in items if _short(e) == "workforce" and e["data"].get("registered_manager_left")]
        absent = [t for t, e in items if e["data"].get("category") == "registered_manager_absence"]
        if any(abs(t - start) < 1e-3 for t in left):
            left_first += 1
            # Regulation 14: notified 28 days on, where the provider notifies (most do).
            assert all(t >= start + 27.9 for t in absent if t >= start)
        full = (
            _rises_from(trajectory, trajectory["subject"]) + trajectory["shapes"][trajectory["subject"]]["onset_days"]
        )
        late = [e["data"] for t, e in items if _short(e) == "workforce" and t > full and "vacancy_rate" in e["data"]]
        early = [e["data"] for t, e in items if _short(e) == "workforce" and t < start and "vacancy_rate" in e["data"]]
        if late and early:
            for measure in ("agency_staff_share", "vacancy_rate"):
                mean_late = sum(d[measure] for d in late) / len(late)
                assert mean_late > sum(d[measure] for d in early) / len(early) + 0.1, measure
    assert left_first >= 1  # the manager leaves first in most (75 %)


def _is_severe(event: dict[str, Any]) -> bool:
    """The domain brief's Major row, read off the event itself."""
    data, short = event["data"], _short(event)
    return (
        (short == "safeguarding_concern" and (data["serious"] or data["linked_death"]))
        # A requirement notice records a breach; CQC reports list it apart from its
        # enforcement actions, and it follows many ordinary Requires-improvement ratings.
        or (short == "cqc_enforcement" and data["quality_related"] and data["action"] != "requirement_notice")
        or (short == "police_flag" and data["kind"] == "criminal_proceedings" and data["care_related"])
        or (short == "statutory_notification" and data["category"] == "death" and data["linked_to_safeguarding"])
    )


def test_every_severe_event_is_in_the_truth_and_every_listed_one_was_sent(
    world: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    events, truth = world
    sent_severe = {(e["subject"], e["id"]) for e in events if _is_severe(e)}
    listed = {(s["location_id"], s["event_id"]) for s in truth["severe_events"]}
    assert sent_severe == listed
    ordinary = set(truth["ordinary_locations"])
    at_good_services = [s for s in truth["severe_events"] if s["location_id"] in ordinary]
    assert at_good_services and all(s["expected_level"] == "major" for s in at_good_services)
    for trajectory in truth["trajectories"]:
        if trajectory["major_from"]:
            assert trajectory["expected_min_level"] == "major"
            assert trajectory["start"] <= trajectory["major_from"]


def test_one_off_poor_care_is_labelled_and_expected_to_stay_unflagged(
    world: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    events, truth = world
    ids = {(e["subject"], e["id"]) for e in events}
    noise = truth["ordinary_noise"]
    assert len(noise) > 0.15 * len(truth["ordinary_locations"])
    assert {n["kind"] for n in noise} >= {"medication_error", "short_staffed_shift"}
    assert all((n["location_id"], n["event_id"]) in ids and n["expected_level"] == "none" for n in noise)


def test_course_shapes() -> None:
    decline = Course(start=100, ramp=200, peaks=DECLINE_PEAKS)
    assert decline.stress(50) == 0 and decline.stress(300) == 1 and 0 < decline.stress(200) < 0.5
    assert decline.multiplier("complaint_medication", 400) == DECLINE_PEAKS["complaint_medication"]
    assert decline.multiplier("notification_dols", 400) == 1.0
    fast = Course(start=100, ramp=200, peaks=DECLINE_PEAKS, power=0.7)
    assert fast.stress(200) > 0.5 > decline.stress(200)  # a fast onset rises early and levels off
    recovery = Course(start=0, ramp=100, peaks=DECLINE_PEAKS, improve=120, recovered=210)
    assert recovery.stress(110) == 1 and 0 < recovery.stress(160) < 1 and recovery.stress(220) == 0
    assert recovery.time_at(0.5) < 120
    partial = Course(start=0, ramp=100, peaks=DECLINE_PEAKS, improve=120, recovered=210, residual=0.4)
    assert partial.stress(400) == pytest.approx(0.4) and partial.multiplier("whistleblowing", 400) == pytest.approx(1.8)
    silent = Course(start=10, ramp=14, peaks=UNDER_REPORTING_PEAKS, power=1.0, degrades_care=False)
    assert silent.multiplier("notification_death", 30) == pytest.approx(0.02)
    assert silent.care_stress(30) == 0 and silent.care_time_at(0.7) == float("inf")
    mild = Course(start=0, ramp=100, peaks=DECLINE_PEAKS, care=0.5)
    assert mild.care_stress(100) == 0.5 and mild.care_time_at(0.7) == float("inf")
    closed = Course(start=0, ramp=10, peaks={}, stops=50)
    assert closed.multiplier("ae_attendance", 49) == 1.0 and closed.multiplier("ae_attendance", 50) == 0.0


def test_the_simulator_never_reads_the_policy_or_imports_scoring() -> None:
    package = Path(__file__).resolve().parents[1] / "services" / "simulator"
    for path in package.glob("*.py"):
        text = path.read_text()
        modules = [
            name
            for node in ast.walk(ast.parse(text))
            for name in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
        ]
        assert not [m for m in modules if m.startswith("services.scoring")], path
        assert "deploy/policy" not in text and ".yaml" not in text, path
    code = "import services.simulator.run, services.simulator.cli, sys; print(sorted(m for m in sys.modules if 'scoring' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _incidents(items: list[tuple[float, dict[str, Any]]], low: float, high: float, category: str) -> float:
    if high <= low:
        return 0.0
    hits = [e for t, e in items if low <= t < high and _short(e) == "provider_incident"]
    return sum(1 for e in hits if e["data"]["category"] == category) / (high - low)


def _poor_reviews(items: list[tuple[float, dict[str, Any]]], low: float, high: float) -> tuple[int, int]:
    reviews = [e for t, e in items if low <= t < high and _short(e) == "care_review"]
    return sum(1 for e in reviews if e["data"]["finding_level"] != "none"), len(reviews)


def test_medication_failures_raise_medication_incidents_and_declines_poor_care_review_findings(
    world: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    events, truth = world
    by_location = _by_location(events)
    before = after = 0.0
    poor_before = reviews_before = poor_after = reviews_after = 0
    for trajectory in truth["trajectories"]:
        for loc in trajectory["locations"]:
            start = days_between(START, trajectory["start"])
            full, eases = _peak_window(trajectory, loc)
            if trajectory["kind"] == Kind.medication_failure.value:
                before += _incidents(by_location[loc], 0, start, "medication_error")
                after += _incidents(by_location[loc], full, eases, "medication_error")
            if trajectory["kind"] in DECLINES:
                poor, total = _poor_reviews(by_location[loc], 0, start)
                poor_before, reviews_before = poor_before + poor, reviews_before + total
                poor, total = _poor_reviews(by_location[loc], full, eases)
                poor_after, reviews_after = poor_after + poor, reviews_after + total
    assert after > 2.0 * before
    # Against ordinary services' reviews, a larger sample than the declining few before they
    # declined (1.5x that: with ~150 reviews it is noisy).
    ordinary = [_poor_reviews(by_location[loc], 0, CONFIG.days) for loc in truth["ordinary_locations"]]
    poor_ordinary, reviews_ordinary = sum(p for p, _ in ordinary), sum(n for _, n in ordinary)
    assert reviews_before and reviews_after and reviews_ordinary > 500
    assert poor_after / reviews_after > 2 * poor_ordinary / reviews_ordinary
    assert poor_after / reviews_after > 1.5 * poor_before / reviews_before


def test_an_under_reporter_stops_its_incident_returns_too(world: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    events, truth = world
    by_location = _by_location(events)
    before = after = 0.0
    for trajectory in truth["trajectories"]:
        if trajectory["kind"] == Kind.under_reporting.value:
            items = by_location[trajectory["subject"]]
            start = days_between(START, trajectory["start"])
            silent = start + trajectory["shapes"][trajectory["subject"]]["onset_days"]
            before += _rate(items, 0, start, {"provider_incident"})
            after += _rate(items, silent, CONFIG.days, {"provider_incident"})
    assert before > 0 and after < 0.15 * before


def test_requirement_notices_follow_most_requires_improvement_ratings(
    world: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    events, truth = world
    by_location = _by_location(events)
    ri = notices = good = good_notices = 0
    ordinary = set(truth["ordinary_locations"])
    for loc, items in by_location.items():
        ratings = [(t, e["data"]["overall"]) for t, e in items if _short(e) == "cqc_rating"]
        notice_times = [
            t for t, e in items if _short(e) == "cqc_enforcement" and e["data"]["action"] == "requirement_notice"
        ]
        for at, overall in ratings:
            followed = any(0 < t - at < 0.02 for t in notice_times)
            if overall == "requires_improvement":
                ri, notices = ri + 1, notices + followed
            elif overall == "good" and loc in ordinary:
                good, good_notices = good + 1, good_notices + followed
    assert ri > 30 and 0.55 < notices / ri < 0.85
    assert good > 100 and good_notices / good < 0.1
