"""The library of deteriorations: which signals move, how far, how fast, for how long.

Pure. A `Template` describes one kind of failure as ranges; `draw_course` draws one
trajectory's shape from it: onset fast or slow (the ramp's length and power), a peak per
signal (log-uniform in its range, times an intensity of the whole trajectory), which of
the optional signals move at all, and whether the stress later eases, fully (a burst, a
recovery) or partly. So two failures of one kind differ as real ones do, and no detector
can learn one fixed multiple.

The kinds follow how services fail (the domain brief's patterns; issue 17's independent
world): a slow rise of concerns; a staffing collapse; a closed culture, where staff and
police speak up while the provider's own notifications and referrals thin out; failing
medicines management; and short sharp bursts that pass. Peak ranges are ESTIMATES:
services rated Inadequate have several times the concerns of Good ones (CQC), and the
issue's independent world used 1.5-5x.
"""

import math
import random
from dataclasses import dataclass, replace

from schemas.directory import ServiceType
from services.simulator.course import Course
from services.simulator.rates import STREAM_BY_NAME
from services.simulator.spread import OWN_REPORT_FAMILIES, family_of
from services.simulator.variants import Variant


@dataclass(frozen=True)
class Signal:
    stream: str
    low: float  # peak multiplier range at full stress (below 1: the stream thins out)
    high: float
    chance: float = 1.0  # probability that this signal moves in one trajectory


@dataclass(frozen=True)
class Template:
    signals: tuple[Signal, ...]
    ramp: tuple[float, float]  # days from start to full stress
    power: tuple[float, float]  # onset: < 1 fast then levelling, > 1 slow then faster
    staffing: tuple[float, float] = (0.2, 1.0)  # how far stress shows in workforce returns
    eases: float = 0.25  # chance that the stress later eases
    hold: tuple[float, float] = (60.0, 240.0)  # days at the peak before it eases
    fall: tuple[float, float] = (30.0, 120.0)  # days the easing takes
    residual: tuple[float, float] = (0.3, 0.7)  # share of the stress left after easing
    focus: str = ""  # what the events' contents emphasise (see payloads.stream_data)
    min_signals: int = 3
    max_signals: int = 99
    # At least one of these moves in every trajectory of the kind (what names the kind).
    anchors: tuple[str, ...] = ()
    degrades_care: bool = True


# One trajectory's rise, whole: some failures go further than others of their kind.
INTENSITY = (0.8, 1.25)
S = Signal
# fmt: off
# A slow 2-4x rise of concerns over 4-8 months: "a series of medication errors, signs of
# neglect, more A&E with the same injury, missed GP appointments, a rise in complaints".
GRADUAL = Template(
    signals=(
        S("complaint_general", 2, 4, 0.9), S("complaint_medication", 2, 5, 0.6), S("complaint_staffing", 2, 4, 0.6),
        S("safeguarding_neglect", 2, 4, 0.9), S("safeguarding_other", 1.5, 3, 0.7),
        S("ccg_medication", 2, 4, 0.5), S("ccg_pressure_ulcers", 2, 4, 0.5), S("ccg_other", 1.5, 3, 0.5),
        S("ae_attendance", 1.2, 1.8, 0.5), S("ae_repeat_injury", 2, 5, 0.5),
        S("missed_gp", 1.5, 3, 0.4), S("missed_dental", 1.5, 3, 0.4),
        S("whistleblowing", 2, 5, 0.6), S("contract_monitoring", 1.5, 2.5, 0.8), S("care_review", 1.2, 1.8, 0.5),
        S("incident_medication_error", 2, 4, 0.5), S("incident_pressure_ulcer", 2, 4, 0.4),
        S("incident_missed_care", 2, 4, 0.4), S("incident_fall", 1.2, 2, 0.4),
        S("notification_serious_injury", 1.5, 2.5, 0.4), S("police_incident", 1.2, 2, 0.3),
        S("visit_missed", 1.5, 3, 0.6), S("visit_missed_time_critical", 1.5, 3, 0.6), S("visit_late", 1.5, 2.5, 0.5),
    ),
    ramp=(120, 240),
    power=(1.3, 2.5),
    anchors=("safeguarding_neglect", "complaint_general"),
)
# The manager leaves, staff follow, vacancies and agency staff rise: visits are missed
# (time-critical ones too), residents fall, staff and families complain.
STAFFING = Template(
    signals=(
        S("visit_missed", 3, 8), S("visit_missed_time_critical", 3, 10), S("visit_late", 2, 5, 0.8),
        S("incident_fall", 1.5, 3, 0.8), S("ae_attendance", 1.3, 2, 0.6), S("ae_repeat_injury", 2, 4, 0.5),
        S("notification_serious_injury", 1.5, 3, 0.5), S("complaint_staffing", 3, 6, 0.9),
        S("complaint_general", 1.5, 3, 0.6), S("whistleblowing", 3, 6, 0.8), S("safeguarding_neglect", 2, 4, 0.7),
        S("incident_missed_care", 2, 5, 0.7), S("contract_monitoring", 1.5, 2.5, 0.6), S("care_review", 1.2, 1.6, 0.3),
    ),
    ramp=(30, 120),
    power=(0.7, 2.0),
    staffing=(1.2, 1.8),
    eases=0.2,
    focus="staffing",
    anchors=("visit_missed", "complaint_staffing"),
)
# A closed culture: whistleblowing and police contacts about care rise while the
# provider's notifications, incident returns and referrals thin out (CQC's closed
# cultures guidance: staff raising concerns outside, the provider reporting less).
CLOSED = Template(
    signals=(
        S("whistleblowing", 3, 6), S("police_incident", 2, 4, 0.9), S("complaint_general", 1.3, 2.5, 0.5),
        S("ae_repeat_injury", 1.5, 3, 0.3),
        S("notification_abuse", 0.2, 0.5, 0.9), S("notification_serious_injury", 0.3, 0.6, 0.7),
        S("notification_police", 0.2, 0.5, 0.7), S("safeguarding_other", 0.4, 0.7),
        S("safeguarding_neglect", 0.5, 0.8, 0.5), S("incident_other", 0.3, 0.6, 0.5),
        S("incident_fall", 0.4, 0.7, 0.4), S("incident_medication_error", 0.4, 0.7, 0.4),
    ),
    ramp=(60, 180),
    power=(1.0, 2.0),
    staffing=(0.3, 0.8),
    eases=0.15,
    focus="closed",
    min_signals=4,
)
# Medicines management fails: the provider's own medication-error returns and the NHS
# commissioner's medication flags rise; families complain; time-critical visits missed.
MEDICATION = Template(
    signals=(
        S("incident_medication_error", 2, 5), S("ccg_medication", 2, 5, 0.9), S("complaint_medication", 1.5, 4, 0.7),
        S("visit_missed_time_critical", 1.5, 3, 0.5), S("ae_attendance", 1.1, 1.5, 0.3),
        S("safeguarding_neglect", 1.2, 2, 0.3), S("contract_monitoring", 1.2, 2, 0.4), S("whistleblowing", 1.5, 3, 0.3),
    ),
    ramp=(30, 180),
    power=(0.7, 2.0),
    staffing=(0.1, 0.5),
    eases=0.3,
    focus="medication",
    min_signals=2,
)
# A short sharp burst of one to three signals that passes within weeks (an outbreak of
# complaints after one incident, a bad month of rota gaps).
BURST = Template(
    signals=(
        S("complaint_general", 2, 5, 0.4), S("complaint_staffing", 2, 5, 0.3), S("safeguarding_neglect", 2, 5, 0.4),
        S("safeguarding_other", 2, 4, 0.3), S("ccg_other", 2, 5, 0.2), S("whistleblowing", 2, 5, 0.3),
        S("incident_fall", 2, 4, 0.3), S("incident_medication_error", 2, 5, 0.3), S("visit_missed", 2, 5, 0.5),
        S("visit_missed_time_critical", 2, 5, 0.4),
    ),
    ramp=(2, 10),
    power=(0.8, 1.2),
    staffing=(0.0, 0.3),
    eases=1.0,
    hold=(7, 30),
    fall=(7, 30),
    residual=(0.0, 0.0),
    min_signals=1,
    max_signals=3,
)
# A decline that an improvement plan reverses: rates back to base.
RECOVERY = replace(GRADUAL, ramp=(90, 150), power=(1.3, 2.0), eases=1.0, hold=(0, 20), fall=(90, 90), residual=(0, 0))
# The provider stops telling: its own notifications, incident returns and referrals all
# but stop within weeks, while families, the NHS, police and commissioners go on.
UNDER_REPORTING = Template(
    signals=tuple(
        S(name, low, high)
        for names, low, high in (
            (("notification_death", "notification_dols", "notification_serious_injury"), 0.02, 0.08),
            (("notification_abuse", "notification_police"), 0.02, 0.08),
            (("safeguarding_neglect", "safeguarding_other"), 0.04, 0.15),
            (("incident_medication_error", "incident_fall", "incident_pressure_ulcer"), 0.04, 0.15),
            (("incident_missed_care", "incident_other"), 0.04, 0.15),
        )
        for name in names
    ),
    ramp=(7, 30),
    power=(1.0, 1.0),
    staffing=(0.0, 0.0),
    eases=0.0,
    degrades_care=False,
)
# fmt: on


def _applies(stream: str, service: ServiceType) -> bool:
    """The stream exists at this kind of service (no call monitoring at a care home)."""
    s = STREAM_BY_NAME[stream]
    return s.per_unit[service] > 0 or s.per_location > 0 or s.per_placed > 0


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def draw_peaks(
    rng: random.Random, template: Template, service: ServiceType, variant: Variant, scale: float = 1.0
) -> dict[str, float]:
    """Which signals move and how far at full stress. `scale` shrinks the rise (several
    locations of a group decline a little less steeply than a lone one)."""
    intensity = rng.uniform(*INTENSITY)
    candidates = [s for s in template.signals if _applies(s.stream, service)]
    draws = [(s, rng.random(), _log_uniform(rng, s.low, s.high)) for s in candidates]
    moving = [(s, peak) for s, chance, peak in draws if chance < s.chance]
    anchors = [(s, peak) for s, _, peak in draws if s.stream in template.anchors]
    if anchors and not any(s.stream in template.anchors for s, _ in moving):
        moving.append(anchors[0])
    if len(moving) < template.min_signals:  # the likeliest of the rest make up the number
        rest = sorted((d for d in draws if d[1] >= d[0].chance), key=lambda d: -d[0].chance)
        moving += [(s, peak) for s, _, peak in rest[: template.min_signals - len(moving)]]
    if len(moving) > template.max_signals:
        moving = rng.sample(moving, template.max_signals)
    peaks: dict[str, float] = {}
    for signal, peak in moving:
        if peak < 1:
            peaks[signal.stream] = peak ** (intensity * variant.severity)
            continue
        excess = (peak - 1) * intensity * scale * variant.severity
        if family_of(signal.stream) in OWN_REPORT_FAMILIES:
            excess *= variant.own_reports_in_decline
        peaks[signal.stream] = 1 + excess
    return peaks


def draw_course(
    rng: random.Random,
    template: Template,
    service: ServiceType,
    start: float,
    days: int,
    variant: Variant,
    scale: float = 1.0,
    stops: float | None = None,
    ramp_cap: float = 0.5,
) -> Course:
    """One trajectory's course from its template. Ramps are compressed to at most
    `ramp_cap` of a short run, so that a failure shows inside it."""
    ramp = min(rng.uniform(*template.ramp), ramp_cap * days)
    power = rng.uniform(*template.power)
    peaks = draw_peaks(rng, template, service, variant, scale)
    improve = recovered = None
    residual = 0.0
    if rng.random() < template.eases:
        improve = start + ramp + min(rng.uniform(*template.hold), 0.25 * days)
        recovered = improve + min(rng.uniform(*template.fall), 0.25 * days)
        residual = rng.uniform(*template.residual)
    return Course(
        start=start,
        ramp=ramp,
        peaks=peaks,
        power=power,
        improve=improve,
        recovered=recovered,
        residual=residual,
        stops=stops,
        degrades_care=template.degrades_care,
        staffing=rng.uniform(*template.staffing),
        care=min(1.0, variant.severity),
        focus=template.focus,
    )
