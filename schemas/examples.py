"""One valid example payload per event type: for producers' documentation, tests and benchmarks."""

from datetime import UTC, datetime
from typing import Any

from schemas.events import TYPE_BY_SHORT_NAME

EXAMPLE_DATA: dict[str, dict[str, Any]] = {
    "complaint": {"category": "medication", "severity": "medium", "raised_by": "family"},
    "statutory_notification": {"category": "serious_injury", "linked_to_safeguarding": False},
    "missed_visit": {
        "outcome": "late",
        "minutes_late": 95,
        "time_critical": True,
        "person_ref": "3f6c1a9e0b7d4e2f8a5c6b1d0e9f7a2b",
    },
    "ccg_flag": {"concern": "pressure_ulcers", "severity": "high", "commissioner": "E54000032"},
    "police_flag": {"kind": "concern_raised", "care_related": True},
    "safeguarding_concern": {"abuse_type": "neglect", "serious": False, "linked_death": False},
    "cqc_rating": {
        "overall": "requires_improvement",
        "published": "2026-10-01",
        "key_questions": {
            "safe": "requires_improvement",
            "effective": "good",
            "caring": "good",
            "responsive": "good",
            "well_led": "requires_improvement",
        },
    },
    "cqc_enforcement": {"action": "warning_notice", "quality_related": True},
    "contract_monitoring": {"finding_level": "medium", "key_questions": ["safe", "well_led"]},
    "whistleblowing": {"topic": "staffing", "key_questions": ["safe"]},
    "workforce": {"agency_staff_share": 0.42, "induction_gaps": True},
    "health_use": {"kind": "ae_attendance", "injury_type": "fall", "repeat_injury": True},
    "provider_incident": {
        "category": "medication_error",
        "harm": "low",
        "person_ref": "9b2e4d6f8a0c1e3f5a7b9c0d2e4f6a8b",
    },
    "care_review": {"finding_level": "low", "key_questions": ["effective"]},
}


def example_event(
    short_type: str = "complaint",
    *,
    event_id: str = "evt-0001",
    source: str = "urn:caresignal:source:example",
    location_id: str = "1-101234567",
    time: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-ready CloudEvent of the given type."""
    when = time or datetime.now(UTC).replace(microsecond=0)
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": TYPE_BY_SHORT_NAME[short_type],
        "time": when.isoformat().replace("+00:00", "Z"),
        "subject": location_id,
        "datacontenttype": "application/json",
        "data": EXAMPLE_DATA[short_type] if data is None else data,
    }
