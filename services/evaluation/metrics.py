"""Detection quality: a detector's level changes against the simulator's ground truth.

Pure. `assess_run` turns one scenario's changes into records (one per planted trajectory,
one per escalation to Moderate or above, plus exposure counts); records of several
scenarios are merged by `merge` and summarised by `summarise`, so that pooled figures are
sums of counts, never averages of rates. The definitions are in docs/evaluation.md.
"""

import bisect
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.risk import Level
from services.evaluation.changes import Change

DAY = timedelta(days=1)
ALERT_LEVEL = Level.moderate
# A level set by a genuine severe event may be held by its trigger for up to 180 days
# (the longest hold in the default policy; ESTIMATE for others): escalations within it
# concern that event.
SEVERE_WINDOW = timedelta(days=180)
# A severe event is "at Major from the event" if the location is Major within this time of
# it: producers report with a delay (notifications ~1 day, police and CQC later).
SEVERE_GRACE = timedelta(days=7)
UNDER_REPORTING_HISTORY = timedelta(days=365)
MONTH_DAYS = 365.25 / 12
ORDINARY = "ordinary"


@dataclass(frozen=True)
class Detection:
    """What became of one planted trajectory."""

    scenario: str
    trajectory: str
    kind: str
    subject: str
    locations: tuple[str, ...]
    start: datetime
    active_end: datetime
    expected: Level
    detected: bool  # at Moderate or above within its active period
    # Days from its start to its first alert (escalation to Moderate+); None if none, or if
    # a subject was already at Moderate+ when it started (an alert about something else).
    days_to_detect: float | None
    started_elevated: bool
    reached_expected: bool
    max_level: Level
    rules: tuple[str, ...]  # every rule named by a change of its subjects in the period
    history_days: float  # from the start of the run to the trajectory's start


@dataclass(frozen=True)
class Escalation:
    """One escalation to Moderate or above of a location: an alert at Moderate+."""

    scenario: str
    location: str
    time: datetime
    old: Level
    new: Level
    kind: str  # the trajectory kind of the location, or "ordinary"
    true: bool
    why: str  # "planted", "severe event", "before start", "after recovery", "no cause"
    rules: tuple[str, ...]
    after_warmup: bool = True


@dataclass
class Exposure:
    ordinary_location_days: float = 0.0  # ordinary locations x days after the warm-up
    quiet_location_days: float = 0.0  # the same, for those with no severe event
    quiet_changes: int = 0
    quiet_max_per_90: float = 0.0
    level_samples: dict[Level, int] = field(default_factory=lambda: {level: 0 for level in Level})
    severe_events: int = 0
    severe_at_major: int = 0
    organisation_alerts: int = 0
    organisation_alerts_planted: int = 0


@dataclass
class Assessment:
    detections: list[Detection] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    exposure: Exposure = field(default_factory=Exposure)


class Timeline:
    """Levels of subjects over time, from their changes."""

    def __init__(self, changes: Iterable[Change]) -> None:
        self.points: dict[str, list[tuple[datetime, Level, tuple[str, ...]]]] = {}
        for change in sorted(changes, key=lambda c: (c.time, c.sequence)):
            self.points.setdefault(change.subject, []).append((change.time, change.new, change.rules))
        self.times = {s: [p[0] for p in pts] for s, pts in self.points.items()}

    def level_at(self, subject: str, t: datetime) -> Level:
        index = bisect.bisect_right(self.times.get(subject, []), t)
        return self.points[subject][index - 1][1] if index else Level.none

    def within(self, subject: str, start: datetime, end: datetime) -> list[tuple[datetime, Level, tuple[str, ...]]]:
        """Changes with start < time <= end."""
        times = self.times.get(subject, [])
        return self.points.get(subject, [])[bisect.bisect_right(times, start) : bisect.bisect_right(times, end)]

    def first_at_or_above(self, subject: str, level: Level, start: datetime, end: datetime) -> datetime | None:
        if self.level_at(subject, start) >= level:
            return start
        return next((t for t, new, _ in self.within(subject, start, end) if new >= level), None)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _first(times: Iterable[datetime | None]) -> datetime | None:
    found = [t for t in times if t is not None]
    return min(found) if found else None


def assess_run(
    scenario: str,
    truth: Mapping[str, Any],
    changes: Sequence[Change],
    providers: Mapping[str, str],
    warmup_days: float = 90.0,
) -> Assessment:
    start, end = _time(truth["start"]), _time(truth["end"])
    assert start is not None and end is not None
    location_changes = [c for c in changes if c.scope == "location"]
    timeline = Timeline(location_changes)
    orgs = Timeline(c for c in changes if c.scope == "organisation")
    out = Assessment()

    planted: dict[str, list[tuple[str, datetime, datetime]]] = {}
    for t in truth["trajectories"]:
        t_start = _time(t["start"])
        assert t_start is not None
        active_end = _time(t.get("recovered")) or end
        for location in t["locations"]:
            planted.setdefault(location, []).append((t["kind"], t_start, active_end))
        expected = Level[t["expected_level_before_major"] or t["expected_min_level"]]
        major_from = _time(t["major_from"])
        firsts = [timeline.first_at_or_above(loc, ALERT_LEVEL, t_start, active_end) for loc in t["locations"]]
        reach = [timeline.first_at_or_above(loc, expected, t_start, active_end) for loc in t["locations"]]
        if t["scope"] == "organisation":
            firsts.append(orgs.first_at_or_above(t["subject"], ALERT_LEVEL, t_start, active_end))
            reach.append(orgs.first_at_or_above(t["subject"], expected, t_start, active_end))
        first = _first(firsts)
        elevated = any(timeline.level_at(loc, t_start) >= ALERT_LEVEL for loc in t["locations"])
        if t["scope"] == "organisation":
            elevated = elevated or orgs.level_at(t["subject"], t_start) >= ALERT_LEVEL
        reached = _first(reach) is not None
        if major_from is not None:
            reached = reached and any(
                timeline.first_at_or_above(loc, Level.major, major_from, active_end) for loc in t["locations"]
            )
        in_period = [c for loc in t["locations"] for c in timeline.within(loc, t_start, active_end)]
        max_level = max(
            [timeline.level_at(loc, t_start) for loc in t["locations"]] + [new for _, new, _ in in_period],
            default=Level.none,
        )
        rules = sorted({r for _, _, rs in in_period for r in rs})
        out.detections.append(
            Detection(
                scenario=scenario,
                trajectory=t["id"],
                kind=t["kind"],
                subject=t["subject"],
                locations=tuple(t["locations"]),
                start=t_start,
                active_end=active_end,
                expected=expected,
                detected=first is not None,
                days_to_detect=(first - t_start) / DAY if first is not None and not elevated else None,
                started_elevated=elevated,
                reached_expected=reached,
                max_level=max_level,
                rules=tuple(rules),
                history_days=(t_start - start) / DAY,
            )
        )

    severe: dict[str, list[datetime]] = {}
    for event in truth["severe_events"]:
        at = _time(event["time"])
        assert at is not None
        severe.setdefault(event["location_id"], []).append(at)
        if not event["in_trajectory"]:
            out.exposure.severe_events += 1
            if timeline.first_at_or_above(event["location_id"], Level.major, at, at + SEVERE_GRACE):
                out.exposure.severe_at_major += 1

    warm = start + timedelta(days=warmup_days)
    for change in location_changes:
        if not (change.escalation and change.new >= ALERT_LEVEL):
            continue
        kinds = planted.get(change.subject, [])
        kind = kinds[0][0] if kinds else ORDINARY
        why = "no cause"
        if any(s <= change.time <= e for _, s, e in kinds):
            why = "planted"
        elif any(at <= change.time <= at + SEVERE_WINDOW for at in severe.get(change.subject, [])):
            why = "severe event"
        elif kinds:
            why = "before start" if change.time < kinds[0][1] else "after recovery"
        out.escalations.append(
            Escalation(
                scenario=scenario,
                location=change.subject,
                time=change.time,
                old=change.old,
                new=change.new,
                kind=kind,
                true=why in ("planted", "severe event"),
                why=why,
                rules=change.rules,
                after_warmup=change.time >= warm,
            )
        )

    observed_days = max((end - warm) / DAY, 0.0)
    ordinary = [loc for loc in truth["ordinary_locations"]]
    quiet = [loc for loc in ordinary if loc not in severe]
    out.exposure.ordinary_location_days = len(ordinary) * observed_days
    out.exposure.quiet_location_days = len(quiet) * observed_days
    for loc in quiet:
        n = len(timeline.within(loc, warm, end))
        out.exposure.quiet_changes += n
        if observed_days > 0:
            out.exposure.quiet_max_per_90 = max(out.exposure.quiet_max_per_90, n / observed_days * 90)
        day = warm + DAY
        while day <= end:
            out.exposure.level_samples[timeline.level_at(loc, day)] += 1
            day += DAY

    corporate = {t["subject"] for t in truth["trajectories"] if t["scope"] == "organisation"}
    troubled = {providers[loc] for loc in planted if loc in providers}
    for change in changes:
        if change.scope == "organisation" and change.escalation and change.new >= ALERT_LEVEL:
            out.exposure.organisation_alerts += 1
            if change.subject in corporate or change.subject in troubled:
                out.exposure.organisation_alerts_planted += 1
    return out


def merge(parts: Iterable[Assessment]) -> Assessment:
    out = Assessment()
    for part in parts:
        out.detections += part.detections
        out.escalations += part.escalations
        e, p = out.exposure, part.exposure
        e.ordinary_location_days += p.ordinary_location_days
        e.quiet_location_days += p.quiet_location_days
        e.quiet_changes += p.quiet_changes
        e.quiet_max_per_90 = max(e.quiet_max_per_90, p.quiet_max_per_90)
        for level, n in p.level_samples.items():
            e.level_samples[level] += n
        e.severe_events += p.severe_events
        e.severe_at_major += p.severe_at_major
        e.organisation_alerts += p.organisation_alerts
        e.organisation_alerts_planted += p.organisation_alerts_planted
    return out


@dataclass(frozen=True)
class KindFigures:
    kind: str
    planted: int
    recall: float | None  # at Moderate or above
    recall_expected: float | None  # at the trajectory's expected minimum level
    precision: float | None
    alerts: int
    median_days: float | None
    p90_days: float | None
    started_elevated: int = 0  # left out of the time to detect


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile by linear interpolation between closest ranks (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    lo = int(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def kind_figures(kind: str, detections: Sequence[Detection], escalations: Sequence[Escalation]) -> KindFigures:
    days = [d.days_to_detect for d in detections if d.days_to_detect is not None]
    return KindFigures(
        kind=kind,
        planted=len(detections),
        recall=_ratio(sum(d.detected for d in detections), len(detections)),
        recall_expected=_ratio(sum(d.reached_expected for d in detections), len(detections)),
        precision=_ratio(sum(e.true for e in escalations), len(escalations)),
        alerts=len(escalations),
        median_days=statistics.median(days) if days else None,
        p90_days=percentile(days, 0.9),
        started_elevated=sum(d.started_elevated for d in detections),
    )


@dataclass(frozen=True)
class Summary:
    kinds: list[KindFigures]
    overall: KindFigures  # declines: every kind expected at Moderate or above
    false_alerts_per_100_per_month: float | None
    ordinary_shares: dict[Level, float]
    flapping_per_90: float | None
    flapping_max_per_90: float
    under_reporting_flagged: float | None
    under_reporting_eligible: int
    severe_at_major: float | None
    severe_events: int
    organisation_alerts: int
    organisation_alerts_planted: int


def summarise(assessment: Assessment) -> Summary:
    det, esc, exp = assessment.detections, assessment.escalations, assessment.exposure
    kinds = sorted({d.kind for d in det} | {e.kind for e in esc if e.kind != ORDINARY})
    rows = [kind_figures(k, [d for d in det if d.kind == k], [e for e in esc if e.kind == k]) for k in kinds]
    rows.append(kind_figures(ORDINARY, [], [e for e in esc if e.kind == ORDINARY]))
    declines = [d for d in det if d.expected >= ALERT_LEVEL]
    overall = kind_figures("overall", declines, esc)
    false_alerts = sum(1 for e in esc if e.kind == ORDINARY and not e.true and e.after_warmup)
    months = exp.ordinary_location_days / MONTH_DAYS
    samples = sum(exp.level_samples.values())
    eligible = [d for d in det if d.kind == "under_reporting" and d.history_days >= UNDER_REPORTING_HISTORY / DAY]
    return Summary(
        kinds=rows,
        overall=overall,
        false_alerts_per_100_per_month=false_alerts / months * 100 if months else None,
        ordinary_shares={lv: (n / samples if samples else 0.0) for lv, n in exp.level_samples.items()},
        flapping_per_90=exp.quiet_changes / exp.quiet_location_days * 90 if exp.quiet_location_days else None,
        flapping_max_per_90=exp.quiet_max_per_90,
        under_reporting_flagged=_ratio(sum(d.reached_expected for d in eligible), len(eligible)),
        under_reporting_eligible=len(eligible),
        severe_at_major=_ratio(exp.severe_at_major, exp.severe_events),
        severe_events=exp.severe_events,
        organisation_alerts=exp.organisation_alerts,
        organisation_alerts_planted=exp.organisation_alerts_planted,
    )


def daily_levels(
    changes: Sequence[Change], subjects: Sequence[str], start: datetime, days: int
) -> list[dict[Level, float]]:
    """Per day (at its end), the share of `subjects` at each level."""
    timeline = Timeline(c for c in changes if c.scope == "location")
    out = []
    for day in range(days):
        at = start + (day + 1) * DAY
        counts = {level: 0 for level in Level}
        for subject in subjects:
            counts[timeline.level_at(subject, at)] += 1
        out.append({level: n / len(subjects) if subjects else 0.0 for level, n in counts.items()})
    return out
