"""How services and authorities differ beyond their type, size and rating.

Pure. Each location's rate of every signal family is multiplied by a factor of its own
(mean 1, coefficient of variation from the variant), drawn once per location and family:
two 40-bed homes rated Good differ by about a third in their safeguarding concerns, and
independently in their complaints. Each authority's (and NHS commissioner's) sources are
multiplied by a factor per source: councils differ in what reaches their systems
(reporting culture). The factors are gamma distributed, as the spread of Poisson rates
between units usually is (a gamma-Poisson mixture is the negative binomial of count
models), with shape 1/cv^2.

A factor is computed from one standard normal draw through the Wilson-Hilferty cube
approximation of the gamma quantile, so that a seed draws the same normal for a location
and family in every variant: the low- and high-spread worlds rank services alike and
differ only in how far apart they are.
"""

import math
import random
from collections.abc import Iterable

from services.simulator.rates import AUTHORITY_PRODUCERS, STREAMS
from services.simulator.variants import Variant

# Stream-name prefix -> signal family. Families whose rates move together in one service
# (its missed visits; its notifications); separate families vary independently.
_FAMILY_OF_PREFIX: dict[str, str] = {
    "visit_": "visits",
    "notification_": "notifications",
    "safeguarding_": "safeguarding",
    "complaint_": "complaints",
    "ccg_": "nhs_quality",
    "police_": "police",
    "ae_": "health_use",
    "missed_": "health_use",
    "contract_monitoring": "contract_monitoring",
    "whistleblowing": "whistleblowing",
    "manager_left": "workforce",
    "incident_": "incidents",
    "care_review": "care_reviews",
}
# The provider's own reports: how much it tells is part of its reporting culture.
OWN_REPORT_FAMILIES = frozenset({"notifications", "incidents"})
# Sources run per area whose reporting culture differs (national CQC sources do not).
CULTURE_PRODUCERS: tuple[str, ...] = (*sorted(AUTHORITY_PRODUCERS), "icb-quality")


def family_of(stream: str) -> str:
    for prefix, family in _FAMILY_OF_PREFIX.items():
        if stream.startswith(prefix):
            return family
    raise KeyError(f"stream {stream!r} belongs to no signal family")


FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(family_of(s.name) for s in STREAMS))


def gamma_factor(z: float, cv: float) -> float:
    """The gamma (mean 1, coefficient of variation `cv`) quantile at the standard normal
    quantile `z` (Wilson-Hilferty: exact to about 1 % for shape >= 1, i.e. cv <= 1)."""
    if cv <= 0:
        return 1.0
    c = cv * cv / 9.0
    return max(1e-3, 1.0 - c + z * math.sqrt(c)) ** 3


def location_factors(rng: random.Random, location_ids: Iterable[str], variant: Variant) -> dict[str, dict[str, float]]:
    """Per location, per signal family: its rate multiplier."""
    out: dict[str, dict[str, float]] = {}
    for location in location_ids:
        row: dict[str, float] = {}
        for family in FAMILIES:
            cv = variant.own_report_cv if family in OWN_REPORT_FAMILIES else variant.spread_cv
            row[family] = gamma_factor(rng.gauss(0.0, 1.0), cv)
        out[location] = row
    return out


def authority_cultures(rng: random.Random, codes: Iterable[str], variant: Variant) -> dict[str, dict[str, float]]:
    """Per authority or NHS commissioner, per source it runs: what reaches the system of
    what happens, relative to the average area."""
    return {
        code: {producer: gamma_factor(rng.gauss(0.0, 1.0), variant.authority_cv) for producer in CULTURE_PRODUCERS}
        for code in codes
    }
