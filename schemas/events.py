"""Event contracts: a CloudEvents 1.0 envelope around one typed payload per signal.

The envelope uses the CloudEvents attribute names so that any CloudEvents tool can read
what ingest writes (structured mode: the whole event is the Kafka record value). The
`type` carries a version (`uk.caresignal.complaint.v1`); a breaking change to a payload
gets a new type name rather than a silent reinterpretation of old records.

No model here has a field that can carry a name, a date of birth, an NHS number, an
address or free text: every field is an enum, a number, a flag, an identifier with a
strict pattern, or an opaque pseudonym.
"""

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from schemas.identifiers import EventId, LocationId, OnsCode, Pseudonym, SourceId

TYPE_PREFIX = "uk.caresignal."
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)


class Contract(BaseModel):
    """Base of every contract: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


# --- strict JSON types ---------------------------------------------------------------
# Pydantic's lax mode reads "yes" and 0 as booleans and "5" as a number: a producer's
# mistake would then be scored as if it meant something. Event fields take only their
# own JSON type (an integer is still a valid number).

Bool = Annotated[bool, Strict()]
Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]


_NUMERIC = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")


def _iso_text(value: object) -> object:
    # Lax mode reads a number, or a string of digits, as a Unix timestamp; a date or time
    # must be an ISO 8601 string (or, from Python, a date/datetime already).
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        raise ValueError("must be an ISO 8601 string, not a number")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_text)]
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]

_JSON_MEDIA_TYPE = re.compile(r'application/json\s*(;\s*charset\s*=\s*("utf-8"|utf-8)\s*)?', re.IGNORECASE)
JSON_MEDIA_TYPES = ("application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8")


def _json_media_type(value: object) -> object:
    # CloudEvents producers (the SDKs, the conformance suite) send `application/json;
    # charset=utf-8`, and binary mode accepts it as Content-Type; JSON is UTF-8 anyway
    # (RFC 8259), so the parameter adds nothing and the event keeps the bare type.
    if not isinstance(value, str):
        return value
    if not _JSON_MEDIA_TYPE.fullmatch(value.strip()):
        raise ValueError("must be application/json, with no parameter but charset=utf-8: event data is UTF-8 JSON")
    return "application/json"


JsonMediaType = Annotated[
    Literal["application/json"],
    BeforeValidator(_json_media_type),
    WithJsonSchema({"type": "string", "enum": list(JSON_MEDIA_TYPES), "default": "application/json"}),
]


# --- shared vocabularies -------------------------------------------------------------


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class KeyQuestion(StrEnum):
    safe = "safe"
    effective = "effective"
    caring = "caring"
    responsive = "responsive"
    well_led = "well_led"


class Rating(StrEnum):
    outstanding = "outstanding"
    good = "good"
    requires_improvement = "requires_improvement"
    inadequate = "inadequate"


KeyQuestions = Annotated[list[KeyQuestion], Field(max_length=5)]


def _unique(values: list[KeyQuestion]) -> list[KeyQuestion]:
    if len(set(values)) != len(values):
        raise ValueError("key questions must not repeat")
    return values


# --- payloads ------------------------------------------------------------------------


class ComplaintCategory(StrEnum):
    care = "care"
    dignity = "dignity"
    staffing = "staffing"
    medication = "medication"
    communication = "communication"
    other = "other"


class Complainant(StrEnum):
    public = "public"
    family = "family"
    staff = "staff"
    advocate = "advocate"
    professional = "professional"
    person_using_service = "person_using_service"


class Complaint(Contract):
    category: ComplaintCategory
    severity: Severity
    raised_by: Complainant | None = None
    person_ref: Pseudonym | None = None


class NotificationCategory(StrEnum):
    death = "death"
    serious_injury = "serious_injury"
    abuse_allegation = "abuse_allegation"
    police_incident = "police_incident"
    deprivation_of_liberty = "deprivation_of_liberty"
    service_disruption = "service_disruption"
    registered_manager_absence = "registered_manager_absence"


class StatutoryNotification(Contract):
    category: NotificationCategory
    linked_to_safeguarding: Bool
    person_ref: Pseudonym | None = None


class VisitOutcome(StrEnum):
    missed = "missed"
    late = "late"


class MissedVisit(Contract):
    outcome: VisitOutcome
    minutes_late: Annotated[Int, Field(ge=1, le=1440)] | None = None
    time_critical: Bool
    person_ref: Pseudonym | None = None

    @model_validator(mode="after")
    def _lateness_matches_outcome(self) -> Self:
        if self.outcome is VisitOutcome.late and self.minutes_late is None:
            raise ValueError("minutes_late is required when outcome is 'late'")
        if self.outcome is VisitOutcome.missed and self.minutes_late is not None:
            raise ValueError("minutes_late must be absent when outcome is 'missed'")
        return self


class CommissionerConcern(StrEnum):
    infection_outbreak = "infection_outbreak"
    pressure_ulcers = "pressure_ulcers"
    medication = "medication"
    clinical_quality = "clinical_quality"
    hospital_admissions = "hospital_admissions"
    other = "other"


class CcgFlag(Contract):
    concern: CommissionerConcern
    severity: Severity
    commissioner: OnsCode | None = None


class PoliceFlagKind(StrEnum):
    incident_attended = "incident_attended"
    concern_raised = "concern_raised"
    criminal_investigation = "criminal_investigation"
    criminal_proceedings = "criminal_proceedings"
    wilful_neglect_investigation = "wilful_neglect_investigation"


class PoliceFlag(Contract):
    kind: PoliceFlagKind
    # The policy's Major trigger is criminal proceedings *about poor care*; proceedings
    # about, say, a burglary at the premises must not set it.
    care_related: Bool


class AbuseType(StrEnum):
    """The Care Act 2014 statutory guidance categories of abuse and neglect."""

    physical = "physical"
    domestic = "domestic"
    sexual = "sexual"
    psychological = "psychological"
    financial = "financial"
    modern_slavery = "modern_slavery"
    discriminatory = "discriminatory"
    organisational = "organisational"
    neglect = "neglect"
    self_neglect = "self_neglect"


class SafeguardingConcern(Contract):
    abuse_type: AbuseType
    serious: Bool
    linked_death: Bool
    person_ref: Pseudonym | None = None


class CqcKeyQuestionRatings(Contract):
    safe: Rating | None = None
    effective: Rating | None = None
    caring: Rating | None = None
    responsive: Rating | None = None
    well_led: Rating | None = None


class CqcRating(Contract):
    overall: Rating
    key_questions: CqcKeyQuestionRatings
    published: IsoDate


class EnforcementAction(StrEnum):
    warning_notice = "warning_notice"
    requirement_notice = "requirement_notice"
    conditions = "conditions"
    suspension = "suspension"
    cancellation = "cancellation"
    prosecution = "prosecution"


class CqcEnforcement(Contract):
    action: EnforcementAction
    quality_related: Bool


class ContractMonitoring(Contract):
    finding_level: Severity
    key_questions: KeyQuestions = []

    _check_unique = field_validator("key_questions")(_unique)


class WhistleblowingTopic(StrEnum):
    care = "care"
    staffing = "staffing"
    management = "management"
    medication = "medication"
    safeguarding = "safeguarding"
    premises = "premises"
    other = "other"


class Whistleblowing(Contract):
    topic: WhistleblowingTopic
    key_questions: KeyQuestions = []

    _check_unique = field_validator("key_questions")(_unique)


Share = Annotated[Number, Field(ge=0.0, le=1.0)]


class Workforce(Contract):
    agency_staff_share: Share | None = None
    vacancy_rate: Share | None = None
    training_gaps: Bool | None = None
    induction_gaps: Bool | None = None
    manager_concerns: Bool | None = None
    registered_manager_left: Bool | None = None

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a workforce event must report at least one measure")
        return self


class HealthUseKind(StrEnum):
    ae_attendance = "ae_attendance"
    missed_gp_appointment = "missed_gp_appointment"
    missed_dental_appointment = "missed_dental_appointment"


class InjuryType(StrEnum):
    fall = "fall"
    fracture = "fracture"
    head_injury = "head_injury"
    burn = "burn"
    bruising = "bruising"
    pressure_ulcer = "pressure_ulcer"
    dehydration = "dehydration"
    infection = "infection"
    other = "other"


class HealthUse(Contract):
    kind: HealthUseKind
    injury_type: InjuryType | None = None
    repeat_injury: Bool = False
    person_ref: Pseudonym | None = None

    @model_validator(mode="after")
    def _injury_only_for_attendances(self) -> Self:
        if self.kind is not HealthUseKind.ae_attendance and (self.injury_type is not None or self.repeat_injury):
            raise ValueError("injury_type and repeat_injury apply only to ae_attendance")
        return self


class IncidentCategory(StrEnum):
    """Categories of a provider's incident log and medication audit, as commissioners'
    contracts ask providers to return them (no free text: the category is the content)."""

    medication_error = "medication_error"
    fall = "fall"
    pressure_ulcer = "pressure_ulcer"
    missed_care = "missed_care"
    choking = "choking"
    absconding = "absconding"
    challenging_behaviour = "challenging_behaviour"
    infection = "infection"
    other = "other"


class Harm(StrEnum):
    """Degree of harm, as in NHS incident reporting (NRLS): severe includes death."""

    none = "none"
    low = "low"
    moderate = "moderate"
    severe = "severe"


class ProviderIncident(Contract):
    """One entry of the provider's incident log or medication audit, shared under
    contract. Unlike a statutory notification it covers incidents of any harm,
    including none: a series of no-harm medication errors is still a series."""

    category: IncidentCategory
    harm: Harm
    person_ref: Pseudonym | None = None


class ReviewFinding(StrEnum):
    """A care review's overall finding about the provider's care: `none` when the
    review found the person's care as planned."""

    none = "none"
    low = "low"
    medium = "medium"
    high = "high"


class CareReview(Contract):
    """A placing authority's review of one person's care and support plan (Care Act
    2014, s.27) at this location: what it found about the care the provider gives."""

    finding_level: ReviewFinding
    key_questions: KeyQuestions = []
    person_ref: Pseudonym | None = None

    _check_unique = field_validator("key_questions")(_unique)

    @model_validator(mode="after")
    def _tags_need_a_finding(self) -> Self:
        if self.finding_level is ReviewFinding.none and self.key_questions:
            raise ValueError("key_questions tag a finding: they must be empty when finding_level is 'none'")
        return self


# --- the envelope --------------------------------------------------------------------


class Envelope(Contract):
    """CloudEvents 1.0 attributes common to every event."""

    specversion: Literal["1.0"]
    id: EventId
    source: SourceId
    time: IsoDatetime
    subject: LocationId
    datacontenttype: JsonMediaType = "application/json"

    @field_validator("time")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        context: dict[str, Any] = info.context or {}
        now: datetime = context.get("now") or datetime.now(UTC)
        tolerance: timedelta = context.get("future_tolerance", DEFAULT_FUTURE_TOLERANCE)
        try:
            # 0001-01-01T00:00+14:00 parses, but is before year 1 in UTC: every consumer would fail on it.
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("time is out of range once converted to UTC") from None
        if value > now + tolerance:
            raise ValueError(f"time is in the future beyond the {int(tolerance.total_seconds())}s tolerance")
        return value

    @property
    def short_type(self) -> str:
        """The signal name without prefix and version, e.g. `complaint`."""
        return self.type.removeprefix(TYPE_PREFIX).rsplit(".", 1)[0]  # type: ignore[attr-defined, no-any-return]


class ComplaintEvent(Envelope):
    type: Literal["uk.caresignal.complaint.v1"]
    data: Complaint


class StatutoryNotificationEvent(Envelope):
    type: Literal["uk.caresignal.statutory_notification.v1"]
    data: StatutoryNotification


class MissedVisitEvent(Envelope):
    type: Literal["uk.caresignal.missed_visit.v1"]
    data: MissedVisit


class CcgFlagEvent(Envelope):
    type: Literal["uk.caresignal.ccg_flag.v1"]
    data: CcgFlag


class PoliceFlagEvent(Envelope):
    type: Literal["uk.caresignal.police_flag.v1"]
    data: PoliceFlag


class SafeguardingConcernEvent(Envelope):
    type: Literal["uk.caresignal.safeguarding_concern.v1"]
    data: SafeguardingConcern


class CqcRatingEvent(Envelope):
    type: Literal["uk.caresignal.cqc_rating.v1"]
    data: CqcRating


class CqcEnforcementEvent(Envelope):
    type: Literal["uk.caresignal.cqc_enforcement.v1"]
    data: CqcEnforcement


class ContractMonitoringEvent(Envelope):
    type: Literal["uk.caresignal.contract_monitoring.v1"]
    data: ContractMonitoring


class WhistleblowingEvent(Envelope):
    type: Literal["uk.caresignal.whistleblowing.v1"]
    data: Whistleblowing


class WorkforceEvent(Envelope):
    type: Literal["uk.caresignal.workforce.v1"]
    data: Workforce


class HealthUseEvent(Envelope):
    type: Literal["uk.caresignal.health_use.v1"]
    data: HealthUse


class ProviderIncidentEvent(Envelope):
    type: Literal["uk.caresignal.provider_incident.v1"]
    data: ProviderIncident


class CareReviewEvent(Envelope):
    type: Literal["uk.caresignal.care_review.v1"]
    data: CareReview


EVENT_MODELS: tuple[type[Envelope], ...] = (
    ComplaintEvent,
    StatutoryNotificationEvent,
    MissedVisitEvent,
    CcgFlagEvent,
    PoliceFlagEvent,
    SafeguardingConcernEvent,
    CqcRatingEvent,
    CqcEnforcementEvent,
    ContractMonitoringEvent,
    WhistleblowingEvent,
    WorkforceEvent,
    HealthUseEvent,
    ProviderIncidentEvent,
    CareReviewEvent,
)

Event = Annotated[
    ComplaintEvent
    | StatutoryNotificationEvent
    | MissedVisitEvent
    | CcgFlagEvent
    | PoliceFlagEvent
    | SafeguardingConcernEvent
    | CqcRatingEvent
    | CqcEnforcementEvent
    | ContractMonitoringEvent
    | WhistleblowingEvent
    | WorkforceEvent
    | HealthUseEvent
    | ProviderIncidentEvent
    | CareReviewEvent,
    Field(discriminator="type"),
]


def _type_name(model: type[Envelope]) -> str:
    literal: str = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    return literal


# `complaint` -> `uk.caresignal.complaint.v1`, and back.
TYPE_BY_SHORT_NAME: dict[str, str] = {
    _type_name(m).removeprefix(TYPE_PREFIX).rsplit(".", 1)[0]: _type_name(m) for m in EVENT_MODELS
}
SHORT_NAMES: frozenset[str] = frozenset(TYPE_BY_SHORT_NAME)


class EventParser:
    """Validates events from JSON bytes or decoded objects.

    `now` and the future tolerance are passed as validation context so that the same
    record validates the same way in a test, in ingest and in a replay.
    """

    def __init__(self, future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE) -> None:
        self._adapter: TypeAdapter[Event] = TypeAdapter(Event)
        self._tolerance = future_tolerance

    def _context(self, now: datetime | None) -> dict[str, Any]:
        return {"now": now or datetime.now(UTC), "future_tolerance": self._tolerance}

    def parse_json(self, raw: bytes | str, now: datetime | None = None) -> Event:
        return self._adapter.validate_json(raw, context=self._context(now))

    def parse_obj(self, obj: object, now: datetime | None = None) -> Event:
        return self._adapter.validate_python(obj, context=self._context(now))
