"""What the baselines see of a run: each distinct event as (location, day, signal, concern).

Pure. The count-only family counts *concerns* (`baseline.is_concern`: what a council's
team logs as one); the own-history detector counts *signals*, one Poisson series per kind
of event that a deterioration may raise. A signal is read from the event contract alone,
never from the simulator's streams, and scales either with the service's capacity (beds
or people supported) or per location (a visit, a return, a report about the service).

Left out of the signals, with why: deaths and DoLS outcomes (not a quality signal, and
deaths are seasonal); the commissioner's infection-outbreak flags (winter outbreaks
double them at ordinary homes: a rate detector would alarm every January); ratings and
enforcement (single events, not rates: the policy's triggers handle them).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.evaluation.baseline import is_concern, short_type

DAY_S = 86_400.0


class Scale(StrEnum):
    capacity = "capacity"  # expected count proportional to beds or people supported
    location = "location"  # about the same at any size (visits, returns, staff reports)


@dataclass(frozen=True)
class Signal:
    name: str
    scale: Scale


SIGNALS: tuple[Signal, ...] = (
    Signal("complaint", Scale.capacity),
    Signal("safeguarding_concern", Scale.capacity),
    Signal("commissioner_flag", Scale.capacity),
    Signal("police_flag", Scale.capacity),
    Signal("whistleblowing", Scale.location),
    Signal("missed_visit", Scale.capacity),
    Signal("missed_time_critical_visit", Scale.capacity),
    Signal("late_visit", Scale.capacity),
    Signal("ae_attendance", Scale.capacity),
    Signal("repeat_injury", Scale.capacity),
    Signal("missed_appointment", Scale.capacity),
    Signal("medication_error", Scale.capacity),
    Signal("other_incident", Scale.capacity),
    Signal("notification_of_harm", Scale.capacity),
    Signal("poor_finding", Scale.location),
    Signal("workforce_gap", Scale.location),
)
SIGNAL_INDEX: dict[str, int] = {s.name: i for i, s in enumerate(SIGNALS)}


def _visit(data: Mapping[str, Any]) -> str:
    if data.get("outcome") == "late":
        return "late_visit"
    return "missed_time_critical_visit" if data.get("time_critical") else "missed_visit"


def _health(data: Mapping[str, Any]) -> str:
    if data.get("kind") != "ae_attendance":
        return "missed_appointment"
    return "repeat_injury" if data.get("repeat_injury") else "ae_attendance"


def signal_name(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The signal an event (short type, data) counts towards, or None."""
    match event_type:
        case "complaint" | "safeguarding_concern" | "police_flag" | "whistleblowing":
            return event_type
        case "ccg_flag":
            return None if data.get("concern") == "infection_outbreak" else "commissioner_flag"
        case "missed_visit":
            return _visit(data)
        case "health_use":
            return _health(data)
        case "provider_incident":
            return "medication_error" if data.get("category") == "medication_error" else "other_incident"
        case "statutory_notification":
            harm = ("serious_injury", "abuse_allegation", "police_incident")
            return "notification_of_harm" if data.get("category") in harm else None
        case "contract_monitoring" | "care_review":
            return "poor_finding" if data.get("finding_level") in ("medium", "high") else None
        case "workforce":
            flags = ("training_gaps", "induction_gaps", "manager_concerns", "registered_manager_left")
            return "workforce_gap" if any(data.get(f) is True for f in flags) else None
    return None


@dataclass
class Observations:
    """One run's events as the baselines see them (resent duplicates once), with the
    directory facts they use. Times are days from the start of the run (event time)."""

    locations: list[str]
    capacity: list[int]
    service_type: list[str]
    days: int
    location: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    signal: list[int] = field(default_factory=list)  # -1: no signal
    concern: list[bool] = field(default_factory=list)
    # Events that can be severe (see `may_be_severe`), by id: the stream's time when each
    # arrived (the latest event time seen on any partition by then), in days.
    arrivals: dict[str, float] = field(default_factory=dict)

    def concern_times(self) -> list[list[float]]:
        """Per location (index order), the times of its concerns, sorted."""
        out: list[list[float]] = [[] for _ in self.locations]
        for loc, t, c in zip(self.location, self.time, self.concern, strict=True):
            if c:
                out[loc].append(t)
        for times in out:
            times.sort()
        return out

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("locations", "capacity", "service_type", "days", "arrivals")} | {
            "rows": [self.location, [round(t, 6) for t in self.time], self.signal, [int(c) for c in self.concern]]
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Observations":
        location, time, signal, concern = data["rows"]
        return cls(
            list(data["locations"]),
            list(data["capacity"]),
            list(data["service_type"]),
            int(data["days"]),
            list(location),
            list(time),
            list(signal),
            [bool(c) for c in concern],
            dict(data["arrivals"]),
        )


def may_be_severe(event_type: str, data: Mapping[str, Any]) -> bool:
    """An event of a kind the truth can name as a single severe event."""
    match event_type:
        case "safeguarding_concern":
            return bool(data.get("serious") or data.get("linked_death"))
        case "cqc_enforcement":
            return True
        case "police_flag":
            return data.get("kind") == "criminal_proceedings"
        case "statutory_notification":
            return data.get("category") == "death"
    return False


class Observer:
    """Collects observations from CloudEvent dicts as a run streams them."""

    def __init__(self, locations: Iterable[tuple[str, int, str]], start: datetime, days: int) -> None:
        rows = list(locations)
        self.out = Observations([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], days)
        self._index = {r[0]: i for i, r in enumerate(rows)}
        self._start = start.timestamp()
        self._seen: set[tuple[str, str]] = set()
        self._clock = float("-inf")

    def event(self, event: Mapping[str, Any], own: bool = True) -> None:
        """One event in arrival order; one of another process's locations (`own` false)
        only moves the stream's time."""
        when = (datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp() - self._start) / DAY_S
        self._clock = max(self._clock, when)
        loc = self._index.get(event["subject"])
        if loc is None or not own:
            return
        key = (event["source"], event["id"])
        if key in self._seen:
            return
        self._seen.add(key)
        kind, data = short_type(event["type"]), event["data"]
        name = signal_name(kind, data)
        if may_be_severe(kind, data):
            self.out.arrivals[event["id"]] = self._clock
        self.out.location.append(loc)
        self.out.time.append(when)
        self.out.signal.append(SIGNAL_INDEX[name] if name is not None else -1)
        self.out.concern.append(is_concern(kind, data))

    def merge(self, other: Observations) -> None:
        """Add another process's observations of the same run (its own locations)."""
        self.out.location += other.location
        self.out.time += other.time
        self.out.signal += other.signal
        self.out.concern += other.concern
        self.out.arrivals |= other.arrivals
