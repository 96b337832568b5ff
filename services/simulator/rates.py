"""Base rates of every signal, per year and per unit of capacity, by service type.

Pure data and arithmetic. Each number cites /work/shared/national-figures.md (NF) or is an
ESTIMATE saying how it was made. Calibration target (NF, "Signals per year"): about
6 million events a year over ~25,000 locations, i.e. ~240 per location, dominated by
home-care visit exceptions and, for care homes, notifications, health use and
safeguarding concerns. `expected_events_per_year` lets tests check that without running.

A stream is one kind of event with its own rate (e.g. medication complaints apart from
other complaints) so that a failure trajectory can raise exactly what fails.
"""

import math
from dataclasses import dataclass

from schemas.directory import ServiceType
from schemas.events import Rating

CH, NH, HC, SL, EC, SH = (
    ServiceType.care_home,
    ServiceType.nursing_home,
    ServiceType.home_care,
    ServiceType.supported_living,
    ServiceType.extra_care,
    ServiceType.shared_lives,
)
_TYPES = (CH, NH, HC, SL, EC, SH)


@dataclass(frozen=True)
class Stream:
    name: str
    event_type: str  # the contract's short name
    producer: str  # which upstream system sends it: names the CloudEvents source
    per_unit: dict[ServiceType, float]  # per bed or person supported, per year
    per_location: float = 0.0  # per location per year, whatever its size
    winter: float = 0.0  # seasonal amplitude: rate x (1 + winter x cos), peak mid-January
    quality_sensitive: bool = True  # worse-rated services produce more of it
    per_placed: float = 0.0  # per person placed by an authority, per year (care reviews)
    # Counted in NF's national total (~6 million a year); the provider incident returns and
    # care reviews are signals NF's total does not list.
    in_nf_total: bool = True


def _units(*values: float) -> dict[ServiceType, float]:
    return dict(zip(_TYPES, values, strict=True))


# Columns: care_home, nursing_home, home_care, supported_living, extra_care, shared_lives.
STREAMS: tuple[Stream, ...] = (
    # Home-care visit exceptions, per person supported. People receive ~900 visits a year
    # (NF: 0.6-0.9 billion visits / 814,000 people, ESTIMATE 740-1,100). Missed visits are
    # 0.5-1 % of visits (NF): we take ~3.9 a person-year, a fifth of them
    # time-critical (ESTIMATE: medication and meal visits are about a fifth of calls), and
    # ~1 reported late exception (over 45 minutes late: ECM systems report exceptions, not
    # every late visit, NF). An agency of 100 people: ~490 exceptions a year, "tens to
    # hundreds" (NF). Missed visits come to 0.43 % of visits, just under NF's 0.5-1 %:
    # NF's central total of ~6 million events a year leaves no room for more.
    # Supported living and extra care: ECM covers fewer visits (ESTIMATE).
    Stream("visit_missed", "missed_visit", "ecm", _units(0, 0, 3.1, 0.8, 2.0, 0)),
    Stream("visit_missed_time_critical", "missed_visit", "ecm", _units(0, 0, 0.8, 0.2, 0.5, 0)),
    Stream("visit_late", "missed_visit", "ecm", _units(0, 0, 1.0, 0.25, 0.6, 0)),
    # Statutory notifications, per bed or person. NF: a 40-bed home sends 20-40 a year
    # including DoLS outcomes and deaths; 0.5-0.7 million nationally. Deaths: ~150,000
    # care home residents die a year over 455,000 beds (ONS, ESTIMATE 0.3 per bed;
    # nursing homes higher, 0.45). DoLS: 332,455 applications a year (NF), most from care
    # homes; outcomes notified ~0.3 per bed (ESTIMATE: about half decided within a year).
    # Home care notifies deaths and injuries during care only (ESTIMATE).
    Stream("notification_death", "statutory_notification", "cqc-notifications",
           _units(0.30, 0.45, 0.03, 0.05, 0.06, 0.02), winter=0.15, quality_sensitive=False),
    Stream("notification_dols", "statutory_notification", "cqc-notifications",
           _units(0.30, 0.35, 0, 0, 0, 0), quality_sensitive=False),
    Stream("notification_serious_injury", "statutory_notification", "cqc-notifications",
           _units(0.08, 0.10, 0.01, 0.04, 0.02, 0.01)),
    Stream("notification_abuse", "statutory_notification", "cqc-notifications",
           _units(0.05, 0.05, 0.02, 0.12, 0.02, 0.03)),
    Stream("notification_police", "statutory_notification", "cqc-notifications",
           _units(0.02, 0.02, 0.005, 0.06, 0.01, 0.01)),
    # Safeguarding concerns: 640,240 in 2024-25 (NF), ~0.375 per bed in care homes so that
    # a 40-bed home has 15 (NF: "10-20"). 46 % of enquiries concern the person's own home
    # (NF) but most of those involve no provider: home care ESTIMATE 0.08 a person
    # ("a few" for 100 people, NF). Neglect is the largest category in care settings
    # (Safeguarding Adults Collection, ESTIMATE 40 %). Supported living higher (ESTIMATE).
    Stream("safeguarding_neglect", "safeguarding_concern", "safeguarding",
           _units(0.15, 0.17, 0.035, 0.10, 0.04, 0.03)),
    Stream("safeguarding_other", "safeguarding_concern", "safeguarding",
           _units(0.225, 0.22, 0.045, 0.25, 0.05, 0.05)),
    # Complaints: "a few" a year for a 40-bed home and for a 100-person agency (NF);
    # ~96,300 feedback contacts reach CQC a year across all sectors (NF). ESTIMATE 0.08
    # a bed and 0.04 a person, split between medication, staffing and the rest.
    Stream("complaint_general", "complaint", "complaints", _units(0.05, 0.05, 0.025, 0.06, 0.03, 0.03)),
    Stream("complaint_medication", "complaint", "complaints", _units(0.01, 0.012, 0.005, 0.01, 0.005, 0.005)),
    Stream("complaint_staffing", "complaint", "complaints", _units(0.02, 0.02, 0.01, 0.02, 0.01, 0.005)),
    # NHS commissioner quality flags: "a handful" a year for a 40-bed home (NF): ESTIMATE
    # 0.1 a bed; infection outbreaks mostly in winter (Dec-Feb, norovirus and flu).
    Stream("ccg_infection", "ccg_flag", "icb-quality", _units(0.02, 0.025, 0, 0.005, 0.01, 0), winter=0.9),
    Stream("ccg_medication", "ccg_flag", "icb-quality", _units(0.02, 0.025, 0.004, 0.01, 0.004, 0.002)),
    Stream("ccg_pressure_ulcers", "ccg_flag", "icb-quality", _units(0.025, 0.04, 0.003, 0.002, 0.003, 0)),
    Stream("ccg_other", "ccg_flag", "icb-quality", _units(0.03, 0.035, 0.003, 0.01, 0.004, 0.002)),
    # Police: ESTIMATE 0.02 a bed (incidents attended, concerns raised), higher in
    # supported living (learning disability and mental health services).
    Stream("police_incident", "police_flag", "police", _units(0.02, 0.02, 0.003, 0.08, 0.01, 0.01)),
    # Health use, per bed: A&E "in proportion to beds, falls dominate" (NF). ESTIMATE 0.6
    # attendances a resident-year (care home residents attend A&E more than other over-75s,
    # ~0.4), ~8 % of them a repeat of the same injury; missed GP and dental appointments
    # ESTIMATE 0.13 a resident-year. Home care: attendances linked to the agency ESTIMATE 0.1.
    Stream("ae_attendance", "health_use", "health-data", _units(0.55, 0.60, 0.09, 0.15, 0.15, 0.05), winter=0.25),
    Stream("ae_repeat_injury", "health_use", "health-data", _units(0.05, 0.05, 0.01, 0.01, 0.01, 0.005)),
    Stream("missed_gp", "health_use", "health-data", _units(0.08, 0.08, 0.015, 0.05, 0.02, 0.02)),
    Stream("missed_dental", "health_use", "health-data", _units(0.05, 0.05, 0.005, 0.03, 0.01, 0.01)),
    # Per location, whatever the size: contract monitoring "one or two visits a year" (NF);
    # whistleblowing ESTIMATE 0.3 a location-year (CQC receives thousands a year across
    # sectors); an ordinary registered manager leaving ESTIMATE 0.05 a year (most leavers
    # are replaced without a gap, Skills for Care turnover is ~25 %).
    Stream("contract_monitoring", "contract_monitoring", "contracts", _units(0, 0, 0, 0, 0, 0), per_location=1.5),
    Stream("whistleblowing", "whistleblowing", "cqc-intelligence", _units(0, 0, 0, 0, 0, 0), per_location=0.3),
    Stream("manager_left", "workforce", "capacity-tracker", _units(0, 0, 0, 0, 0, 0), per_location=0.05,
           quality_sensitive=False),
    # Provider incident returns: the incident log and medication audit that contracts ask
    # providers to return (monthly), one event an incident. No national total is published
    # (not in NF). ESTIMATES: medication errors reported ~0.4 a bed-year in care homes
    # (observational studies find errors for most residents, mostly without harm; audits
    # record far fewer), less in home care (medication support for some clients only); falls
    # with injury ~0.4 a bed-year (care home residents fall ~1.5 times a year, NICE CG161;
    # about a quarter injure themselves); pressure ulcers more in nursing homes; "other"
    # covers choking, absconding, challenging behaviour (most in supported living), infection.
    Stream("incident_medication_error", "provider_incident", "provider-returns",
           _units(0.40, 0.50, 0.08, 0.30, 0.10, 0.05), in_nf_total=False),
    Stream("incident_fall", "provider_incident", "provider-returns",
           _units(0.40, 0.35, 0.05, 0.10, 0.10, 0.03), winter=0.1, in_nf_total=False),
    Stream("incident_pressure_ulcer", "provider_incident", "provider-returns",
           _units(0.03, 0.08, 0.01, 0.005, 0.01, 0), in_nf_total=False),
    Stream("incident_missed_care", "provider_incident", "provider-returns",
           _units(0.03, 0.03, 0, 0.05, 0.02, 0.01), in_nf_total=False),
    Stream("incident_other", "provider_incident", "provider-returns",
           _units(0.10, 0.10, 0.02, 0.40, 0.03, 0.05), in_nf_total=False),
    # Care reviews by the placing authorities, per person they placed: the Care Act 2014
    # statutory guidance expects a review at least every 12 months; in practice about half
    # to two thirds of long-term clients are reviewed in a year (ESTIMATE 0.55). Self-funders
    # are reviewed by nobody, so a location with no placement gets none. Not in NF's total.
    Stream("care_review", "care_review", "care-reviews", _units(0, 0, 0, 0, 0, 0), per_placed=0.55,
           quality_sensitive=False, in_nf_total=False),
)  # fmt: skip
STREAM_BY_NAME: dict[str, Stream] = {s.name: s for s in STREAMS}

# Scheduled, not Poisson: a monthly workforce return (DHSC capacity tracker, ESTIMATE one
# a month from every location) and CQC inspections with their published rating.
WORKFORCE_RETURNS_PER_YEAR = 12
# CQC re-inspection intervals by current rating, in days (ESTIMATE from CQC's published
# frequencies: Good and Outstanding within ~30 months, Requires improvement within 12,
# Inadequate within 6): a rating every ~2-3 years for most locations.
# A requirement notice (a breach of the regulations, with a plan asked for) follows most
# Requires-improvement and Inadequate inspections and a few Good ones (ESTIMATE: CQC
# rates a key question Requires improvement where it finds a breach, so most RI reports
# carry one; Good overall with one breach is uncommon). CQC reports list them apart from
# its enforcement actions; they are quality-related (safe care, governance, staffing).
REQUIREMENT_NOTICE_AFTER: dict[Rating, float] = {
    Rating.outstanding: 0.0,
    Rating.good: 0.03,
    Rating.requires_improvement: 0.7,
    Rating.inadequate: 0.7,
}
INSPECTION_INTERVAL_DAYS: dict[Rating, float] = {
    Rating.outstanding: 900.0,
    Rating.good: 900.0,
    Rating.requires_improvement: 365.0,
    Rating.inadequate: 180.0,
}

# Worse-rated services produce more of the quality-sensitive signals (ESTIMATE).
RATING_FACTOR: dict[Rating, float] = {
    Rating.outstanding: 0.8,
    Rating.good: 1.0,
    Rating.requires_improvement: 1.3,
    Rating.inadequate: 1.8,
}
# Services differ beyond their size and rating, and authorities in what reaches their
# systems: spread.py multiplies these rates by factors of each location and area.

# Reporting delay per producer, in days: (mean of an exponential, cap). ESTIMATE from how
# each source works: call monitoring within the hour; notifications "without delay";
# NHS data in monthly extracts; contract monitoring reports written up after the visit.
REPORTING_DELAY_DAYS: dict[str, tuple[float, float]] = {
    "ecm": (0.01, 0.25),
    "cqc-notifications": (1.0, 14.0),
    "safeguarding": (1.0, 10.0),
    "complaints": (3.0, 30.0),
    "icb-quality": (4.0, 30.0),
    "police": (2.0, 20.0),
    "health-data": (10.0, 35.0),
    "contracts": (7.0, 30.0),
    "cqc-intelligence": (2.0, 14.0),
    "cqc-ratings": (0.5, 3.0),
    "cqc-enforcement": (2.0, 10.0),
    "capacity-tracker": (2.0, 7.0),
    "provider-returns": (15.0, 35.0),  # monthly returns: up to a month and a few days late
    "care-reviews": (7.0, 30.0),  # written up after the review, like contract monitoring
}
# Producers resend after a timeout: the same event, same id, again (ESTIMATE 0.5 %),
# from five minutes to a day later.
DUPLICATE_SHARE = 0.005
DUPLICATE_DELAY_DAYS = (5 / 1440, 1.0)

# Producers whose systems serve one authority's area; the rest are national.
AUTHORITY_PRODUCERS = frozenset(
    {"ecm", "safeguarding", "complaints", "police", "contracts", "provider-returns", "care-reviews"}
)
# People placed by authorities, as a share of capacity, on average over all locations
# (population.py: 30-80 % funded where anyone is placed; 15 % of homes and 20 % of
# agencies have only self-funders): for expected rates without a population at hand.
TYPICAL_PLACED_SHARE = 0.45
COMMISSIONER_PRODUCERS = frozenset({"icb-quality", "health-data"})


def seasonal(stream: Stream, day_of_year: float) -> float:
    """Rate factor for the time of year: 1 + winter x cos, highest around 15 January."""
    if not stream.winter:
        return 1.0
    return 1.0 + stream.winter * math.cos(2 * math.pi * (day_of_year - 15) / 365.25)


def base_rate(stream: Stream, service: ServiceType, capacity: int, placed: float | None = None) -> float:
    """Events a year for an ordinary, Good-rated location of this type and size, with
    `placed` people placed by authorities (None: the typical share of its capacity)."""
    people = capacity * TYPICAL_PLACED_SHARE if placed is None else placed
    return stream.per_unit[service] * capacity + stream.per_location + stream.per_placed * people


def expected_events_per_year(
    service: ServiceType, capacity: int, rating: Rating = Rating.good, *, nf_only: bool = False
) -> float:
    """Expected events a year from an ordinary location, scheduled returns included;
    with `nf_only`, only the signals NF's national total counts."""
    factor = RATING_FACTOR[rating]
    streams = [s for s in STREAMS if s.in_nf_total or not nf_only]
    total = sum(base_rate(s, service, capacity) * (factor if s.quality_sensitive else 1.0) for s in streams)
    inspections = 365.0 / INSPECTION_INTERVAL_DAYS[rating]
    notices = 0.0 if nf_only else inspections * REQUIREMENT_NOTICE_AFTER[rating]
    return total + WORKFORCE_RETURNS_PER_YEAR + inspections + notices
