"""What each event says: the contract's `data` for every stream, shifted by stress.

Pure. `stress` is 0 at an ordinary service and 1 at the worst of a decline: it makes
complaints more severe, contract-monitoring findings higher, agency staff more common.
Category mixes are ESTIMATES unless cited. People are referred to only by opaque
pseudonyms (a keyed hash in hex), never by anything personal.
"""

import hashlib
import random
from datetime import date
from typing import Any

from schemas.events import Rating

KEY_QUESTIONS = ["safe", "effective", "caring", "responsive", "well_led"]
_RATING_ORDER = [Rating.outstanding, Rating.good, Rating.requires_improvement, Rating.inadequate]

# Safeguarding Adults Collection type shares in care settings, neglect apart (ESTIMATE).
_OTHER_ABUSE = {
    "physical": 0.36,
    "psychological": 0.2,
    "financial": 0.14,
    "organisational": 0.12,
    "sexual": 0.06,
    "discriminatory": 0.03,
    "domestic": 0.04,
    "self_neglect": 0.05,
}
_INJURIES = {
    "fall": 0.5,
    "fracture": 0.1,
    "head_injury": 0.08,
    "infection": 0.1,
    "dehydration": 0.04,
    "bruising": 0.06,
    "pressure_ulcer": 0.02,
    "burn": 0.01,
    "other": 0.09,
}
_GENERAL_COMPLAINTS = {"care": 0.4, "dignity": 0.15, "communication": 0.3, "other": 0.15}
_COMPLAINANTS = {
    "family": 0.55,
    "person_using_service": 0.15,
    "public": 0.05,
    "advocate": 0.05,
    "professional": 0.1,
    "staff": 0.1,
}


# Incident categories apart from the streams of their own (ESTIMATE).
_OTHER_INCIDENTS = {"challenging_behaviour": 0.45, "infection": 0.2, "choking": 0.05, "absconding": 0.1, "other": 0.2}
# Share of incidents with no harm, by category (ESTIMATE, the NRLS pattern: most
# medication errors and "missed care" do no harm; a pressure ulcer is harm by definition).
_NO_HARM = {"medication_error": 0.8, "missed_care": 0.6, "fall": 0.35, "pressure_ulcer": 0.0}


def _harm(rng: random.Random, category: str, stress: float) -> str:
    """none / low / moderate / severe: worse under stress (ESTIMATE)."""
    if rng.random() < _NO_HARM.get(category, 0.5) * (1 - 0.4 * stress):
        return "none"
    draw = rng.random()
    if draw < 0.02 + 0.04 * stress:
        return "severe"
    return "moderate" if draw < 0.15 + 0.25 * stress else "low"


def _review_finding(rng: random.Random, stress: float) -> str:
    """A care review's finding about the care given (ESTIMATE: most reviews find care as
    planned; ~13 % a low-level issue, ~5 % medium, ~2 % high); worse under stress."""
    draw = rng.random()
    if draw < 0.02 + 0.15 * stress:
        return "high"
    if draw < 0.07 + 0.3 * stress:
        return "medium"
    return "low" if draw < 0.20 + 0.3 * stress else "none"


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _severity(rng: random.Random, stress: float, high: float = 0.08, medium: float = 0.35) -> str:
    draw = rng.random()
    if draw < high + 0.25 * stress:
        return "high"
    return "medium" if draw < high + medium + 0.4 * stress else "low"


class People:
    """Pseudonyms for the people a location supports, and who went to A&E with what."""

    def __init__(self, secret: str, location: str, capacity: int) -> None:
        self._prefix = f"{secret}:{location}:"
        self._capacity = capacity
        self._injured: list[tuple[str, str]] = []
        self._known: dict[int, str] = {}

    def pseudonym(self, index: int) -> str:
        known = self._known.get(index)
        if known is None:
            known = hashlib.blake2b((self._prefix + str(index)).encode(), digest_size=16).hexdigest()
            self._known[index] = known
        return known

    def anyone(self, rng: random.Random) -> str:
        return self.pseudonym(rng.randrange(self._capacity))

    def attended(self, person: str, injury: str) -> None:
        self._injured = [*self._injured[-7:], (person, injury)]

    def repeat(self, rng: random.Random) -> tuple[str, str]:
        if not self._injured:
            return self.anyone(rng), "fall"
        return rng.choice(self._injured)


# Whistleblowing topics and their weights at an ordinary service, and the weight each
# failure adds at full stress (ESTIMATE; CQC's closed-cultures guidance: staff speak up
# about care, safeguarding and managers where a service has turned inward).
_WHISTLE_TOPICS = ["staffing", "care", "management", "medication", "safeguarding", "premises", "other"]
_WHISTLE_BASE = [3.0, 2.0, 1.5, 1.0, 1.0, 0.5, 1.0]
_WHISTLE_STRESS: dict[str, list[float]] = {
    "": [0, 0, 3, 2, 0, 0, 0],
    "staffing": [4, 0, 2, 0, 0, 0, 0],
    "closed": [0, 2, 2, 0, 4, 0, 0],
    "medication": [0, 0, 1, 4, 0, 0, 0],
}


def stream_data(name: str, rng: random.Random, stress: float, people: People, focus: str = "") -> dict[str, Any]:
    """The payload of one event of a Poisson stream (see rates.STREAMS). `focus` names the
    kind of failure behind the stress (course.Course.focus), where it shows in contents."""
    if name.startswith("visit_"):
        data: dict[str, Any] = {"outcome": "late" if name == "visit_late" else "missed"}
        if name == "visit_late":
            data["minutes_late"] = min(1440, 45 + int(rng.expovariate(1 / 40)))
        data["time_critical"] = name == "visit_missed_time_critical" or (name == "visit_late" and rng.random() < 0.2)
        data["person_ref"] = people.anyone(rng)
        return data
    if name.startswith("notification_"):
        category = {
            "death": "death",
            "dols": "deprivation_of_liberty",
            "serious_injury": "serious_injury",
            "abuse": "abuse_allegation",
            "police": "police_incident",
        }[name.removeprefix("notification_")]
        linked = category == "abuse_allegation" or (category == "serious_injury" and rng.random() < 0.1)
        return {"category": category, "linked_to_safeguarding": linked, "person_ref": people.anyone(rng)}
    if name.startswith("safeguarding_"):
        abuse = "neglect" if name == "safeguarding_neglect" else _pick(rng, _OTHER_ABUSE)
        # Concerns about serious abuse or neglect (the policy's Major row) come only from
        # planned severe events, so that the ground truth names every one of them.
        return {"abuse_type": abuse, "serious": False, "linked_death": False, "person_ref": people.anyone(rng)}
    if name.startswith("complaint_"):
        category = name.removeprefix("complaint_")
        data = {
            "category": _pick(rng, _GENERAL_COMPLAINTS) if category == "general" else category,
            "severity": _severity(rng, stress),
            "raised_by": _pick(rng, _COMPLAINANTS),
        }
        if rng.random() < 0.5:
            data["person_ref"] = people.anyone(rng)
        return data
    if name.startswith("ccg_"):
        concern = name.removeprefix("ccg_")
        if concern == "infection":
            concern = "infection_outbreak"
        elif concern == "other":
            concern = rng.choice(["clinical_quality", "hospital_admissions", "other"])
        return {"concern": concern, "severity": _severity(rng, stress, 0.05, 0.3)}
    if name == "police_incident":
        # In a closed culture the police hear about care itself (ESTIMATE).
        closed = stress if focus == "closed" else 0.0
        kind = "incident_attended" if rng.random() < 0.7 - 0.4 * closed else "concern_raised"
        if rng.random() < 0.03:
            kind = "criminal_investigation"  # e.g. a theft from a resident, not about care quality
        return {"kind": kind, "care_related": kind == "concern_raised" and rng.random() < 0.3 + 0.5 * closed}
    if name in ("ae_attendance", "ae_repeat_injury"):
        if name == "ae_repeat_injury":
            person, injury = people.repeat(rng)
        else:
            person, injury = people.anyone(rng), _pick(rng, _INJURIES)
        people.attended(person, injury)
        return {
            "kind": "ae_attendance",
            "injury_type": injury,
            "repeat_injury": name == "ae_repeat_injury",
            "person_ref": person,
        }
    if name in ("missed_gp", "missed_dental"):
        kind = "missed_gp_appointment" if name == "missed_gp" else "missed_dental_appointment"
        return {"kind": kind, "person_ref": people.anyone(rng)}
    if name == "contract_monitoring":
        level = _severity(rng, stress, 0.03, 0.22)
        tags = rng.sample(KEY_QUESTIONS, rng.randint(0 if level == "low" else 1, 2))
        if stress > 0.5:  # failing services fail first on safety and leadership
            tags = sorted({*tags, "safe", "well_led"}, key=KEY_QUESTIONS.index)
        return {"finding_level": level, "key_questions": tags}
    if name == "whistleblowing":
        extra = _WHISTLE_STRESS.get(focus, _WHISTLE_STRESS[""])
        weights = [b + e * stress for b, e in zip(_WHISTLE_BASE, extra, strict=True)]
        topic = rng.choices(_WHISTLE_TOPICS, weights=weights)[0]
        return {"topic": topic, "key_questions": ["well_led"] if topic == "management" else ["safe"]}
    if name == "manager_left":
        return {"registered_manager_left": True}
    if name.startswith("incident_"):
        category = name.removeprefix("incident_")
        if category == "other":
            category = _pick(rng, _OTHER_INCIDENTS)
        return {"category": category, "harm": _harm(rng, category, stress), "person_ref": people.anyone(rng)}
    if name == "care_review":
        finding = _review_finding(rng, stress)
        data = {"finding_level": finding, "person_ref": people.anyone(rng)}
        if finding != "none":
            tags = rng.sample(KEY_QUESTIONS, rng.randint(1, 2))
            if stress > 0.5:  # failing services fail first on safety and leadership
                tags = sorted({*tags, "safe", "well_led"}, key=KEY_QUESTIONS.index)
            data["key_questions"] = tags
        return data
    raise KeyError(f"no payload for stream {name!r}")


def workforce_return(rng: random.Random, agency: float, vacancy: float, stress: float) -> dict[str, Any]:
    """A monthly return. Skills for Care: vacancy rate ~8 % in 2023-24; agency staff
    ESTIMATE ~6 % of care hours. Under stress both rise and induction and training lapse;
    `stress` here is the staffing stress (up to ~1.8 in a staffing collapse)."""
    share = min(1.0, max(0.0, agency + 0.35 * stress + rng.gauss(0, 0.015)))
    vacant = min(1.0, max(0.0, vacancy + 0.2 * stress + rng.gauss(0, 0.01)))
    return {
        "agency_staff_share": round(share, 3),
        "vacancy_rate": round(vacant, 3),
        "training_gaps": rng.random() < 0.05 + 0.6 * stress,
        "induction_gaps": rng.random() < 0.03 + 0.6 * stress,
    }


def inspection_rating(rng: random.Random, latent: Rating, stress: float, published: date) -> dict[str, Any]:
    """A published CQC rating: the service's usual rating, or worse the more stressed it is."""
    index = _RATING_ORDER.index(latent)
    if stress >= 0.85:
        index = 3
    elif stress >= 0.4:
        index = max(index, 2)
    elif rng.random() < 0.2:  # ordinary inspections move a service one step either way
        index = min(2, max(0, index + rng.choice([-1, 1])))
    overall = _RATING_ORDER[index]
    key_questions: dict[str, str] = {}
    for question in KEY_QUESTIONS:
        step = rng.choices([-1, 0, 1], weights=[0.1, 0.8, 0.1])[0]
        if stress >= 0.4 and question in ("safe", "well_led"):
            step = max(step, 0)  # failing services fail first on safety and leadership
        key_questions[question] = _RATING_ORDER[min(3, max(0, index + step))].value
    return {"overall": overall.value, "key_questions": key_questions, "published": published.isoformat()}
