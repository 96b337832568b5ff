"""World variants: presets of how much services differ and how hard failures show.

A policy tuned on one simulated world can fit that world's accidents rather than how care
fails. Each variant changes one thing a real country may differ in from the standard
world, so that an evaluation over every variant shows what a policy's judgement rests on.
The standard world's values are ESTIMATES (see each field); the others are deliberate
departures from them, not estimates of anything. Pure data: nothing here reads a policy.
"""

from dataclasses import dataclass, fields


class UnknownVariant(ValueError):
    """A variant name that is not in VARIANTS."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown variant {name!r}: one of {', '.join(VARIANTS)}")
        self.name = name


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str
    # Coefficient of variation of each location's rate multiplier per signal family (mean 1,
    # drawn once per location and family): services of the same type and size differ by
    # about a third (ESTIMATE: the spread the independent world of issue 17 used; CQC's
    # notification and safeguarding counts per bed vary at least that much between homes).
    spread_cv: float = 0.3
    # The same for the provider's own reports (statutory notifications, incident returns):
    # how much a provider tells varies with its reporting culture as well as its care.
    own_report_cv: float = 0.3
    # Coefficient of variation of each authority's (and NHS commissioner's) multiplier per
    # source it runs: safeguarding referrals, complaints, contract monitoring, care
    # reviews, call monitoring, police, incident returns, NHS quality flags (ESTIMATE:
    # Safeguarding Adults Collection concerns per 100,000 adults differ several-fold
    # between councils; a quarter is a conservative spread for what reaches a system).
    authority_cv: float = 0.25
    # Scales every deterioration's departure from base: a peak of p becomes 1 + (p - 1) x
    # severity (a thinning of p < 1 becomes p ** severity); the damage that shows in what
    # events say (severity of complaints, findings, ratings) at most at full stress.
    severity: float = 1.0
    # Share of the rise in the provider's own reports (notifications, incident returns)
    # during a deterioration that it actually sends: 1 reports all of it.
    own_reports_in_decline: float = 1.0
    # Scales how many locations are planted with each deterioration.
    plant_scale: float = 1.0
    # Care homes planted as under-reporters (standard: ESTIMATE 1.2 %, enough to measure).
    under_reporting_share: float = 0.012

    def __post_init__(self) -> None:
        for name, value in self.parameters().items():
            if value < 0:
                raise ValueError(f"variant {self.name}: {name} must not be negative")
        if self.severity <= 0 or self.plant_scale <= 0:
            raise ValueError(f"variant {self.name}: severity and plant_scale must be positive")
        if self.own_reports_in_decline > 1 or self.under_reporting_share > 0.5:
            raise ValueError(f"variant {self.name}: own_reports_in_decline <= 1, under_reporting_share <= 0.5")

    def parameters(self) -> dict[str, float]:
        """The numbers, for the ground truth and reports."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self) if f.name not in ("name", "summary")}


STANDARD = Variant("standard", "the default world: services differ by about a third, failures as in the library")

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        STANDARD,
        Variant(
            "low-spread",
            "services of one type and size almost alike (a tenth), authorities too",
            spread_cv=0.1,
            own_report_cv=0.1,
            authority_cv=0.1,
        ),
        Variant(
            "high-spread",
            "services differ by a half, authorities by two fifths",
            spread_cv=0.5,
            own_report_cv=0.5,
            authority_cv=0.4,
        ),
        Variant("mild", "deteriorations rise about half as far above base", severity=0.55),
        Variant("severe", "deteriorations rise 1.6 times as far above base", severity=1.6),
        Variant(
            "under-reporting",
            "providers differ by a half in what they report, send a third of a decline's rise in their own "
            "reports, and more care homes go quiet",
            own_report_cv=0.5,
            own_reports_in_decline=0.3,
            under_reporting_share=0.04,
        ),
    )
}


def variant_named(name: str | Variant) -> Variant:
    """The preset of this name (a Variant passes through); UnknownVariant otherwise."""
    if isinstance(name, Variant):
        return name
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownVariant(name) from None
