"""Which of the simulator's Poisson streams an event came from, read off its contents:
for tests that measure the simulated world stream by stream."""

from typing import Any

_CATEGORY_STREAM = {
    "death": "notification_death",
    "deprivation_of_liberty": "notification_dols",
    "serious_injury": "notification_serious_injury",
    "abuse_allegation": "notification_abuse",
    "police_incident": "notification_police",
}


def stream_of(event: dict[str, Any]) -> str | None:
    """The Poisson stream (rates.STREAMS) an event came from, read off its contents; None
    for scheduled events (ratings, returns, planned notices)."""
    short, data = str(event["type"]).split(".")[2], event["data"]
    if short == "missed_visit":
        if data["outcome"] == "late":
            return "visit_late"
        return "visit_missed_time_critical" if data["time_critical"] else "visit_missed"
    if short == "statutory_notification":
        return _CATEGORY_STREAM.get(data["category"])
    if short == "safeguarding_concern":
        if data["serious"] or data["linked_death"]:
            return None
        return "safeguarding_neglect" if data["abuse_type"] == "neglect" else "safeguarding_other"
    if short == "complaint":
        return (
            f"complaint_{data['category']}" if data["category"] in ("medication", "staffing") else "complaint_general"
        )
    if short == "ccg_flag":
        concern = data["concern"]
        named = {"infection_outbreak": "infection", "medication": "medication", "pressure_ulcers": "pressure_ulcers"}
        return f"ccg_{named.get(concern, 'other')}"
    if short == "police_flag":
        return None if data["kind"] == "criminal_proceedings" else "police_incident"
    if short == "health_use":
        if data["kind"] == "ae_attendance":
            return "ae_repeat_injury" if data["repeat_injury"] else "ae_attendance"
        return "missed_gp" if data["kind"] == "missed_gp_appointment" else "missed_dental"
    if short in ("contract_monitoring", "whistleblowing", "care_review"):
        return short
    if short == "provider_incident":
        own = ("medication_error", "fall", "pressure_ulcer", "missed_care")
        return f"incident_{data['category']}" if data["category"] in own else "incident_other"
    return None
