"""A synthetic population: authorities, provider organisations, locations and placements.

Pure: every draw comes from the `random.Random` passed in, so a seed gives one population.
Proportions and sizes come from /work/shared/national-figures.md (cited beside each number)
or are marked ESTIMATE with how they were made.
"""

import math
import random
from dataclasses import dataclass, field
from typing import TypeVar

from schemas.directory import Authority, AuthorityKind, Location, Placement, PlacementStatus, ServiceType
from schemas.events import Rating

T = TypeVar("T")

# --- service mix ------------------------------------------------------------------------
# Share of locations by service type, out of ~25,000 CQC-registered locations
# (national-figures.md: "roughly 25,000 (care homes about 14,000-15,000; the rest mostly
# home care and supported living)"; "home-care agencies about 8,900-10,000+").
SERVICE_MIX: dict[ServiceType, float] = {
    # 14,500 care homes of 25,000 = 0.58. The residential/nursing split (about 10,300 and
    # 4,200) is an ESTIMATE: CQC's directory has roughly 2.5 residential homes per nursing home.
    ServiceType.care_home: 10_300 / 25_000,
    ServiceType.nursing_home: 4_200 / 25_000,
    # 9,300 agencies: the middle of "about 8,900-10,000+".
    ServiceType.home_care: 9_300 / 25_000,
    # The remaining 1,200: ESTIMATE, split by how often each type appears in the directory.
    ServiceType.supported_living: 800 / 25_000,
    ServiceType.extra_care: 250 / 25_000,
    ServiceType.shared_lives: 150 / 25_000,
}

# Capacity (beds, or people supported) per location: log-normal (mean, sigma) and bounds.
# Care homes: 455,000 beds over ~14,500 homes = ~31 beds on average (national-figures.md,
# The King's Fund "Social care 360"); 10,300 residential x 24 + 4,200 nursing x 48 =
# 449,000 beds (the residential/nursing means are an ESTIMATE: nursing homes run about
# twice as large). Home care: 814,000 people (NAO 2020) over ~9,300 agencies = ~86 per
# agency, with a long tail (sigma 1.0: median ~52, a few agencies over 1,000 people).
# Supported living, extra care and shared lives: ESTIMATE, small services.
CAPACITY: dict[ServiceType, tuple[float, float, int, int]] = {
    ServiceType.care_home: (24.0, 0.5, 3, 150),
    ServiceType.nursing_home: (48.0, 0.45, 10, 200),
    ServiceType.home_care: (88.0, 1.0, 1, 3_000),
    ServiceType.supported_living: (12.0, 0.7, 1, 120),
    ServiceType.extra_care: (40.0, 0.5, 5, 250),
    ServiceType.shared_lives: (20.0, 0.6, 1, 150),
}

CARE_HOMES = frozenset({ServiceType.care_home, ServiceType.nursing_home})

# Published ratings at the start of a run (national-figures.md: "most locations are rated
# Good (about three in four), about one in five Requires improvement, about 1 %
# Inadequate, a few per cent Outstanding"). Inadequate is left to planted declines, so
# the ordinary population holds the other three in the same proportions.
RATING_MIX: dict[Rating, float] = {
    Rating.outstanding: 0.05,
    Rating.good: 0.76,
    Rating.requires_improvement: 0.19,
}

# Organisation sizes (locations per provider): most run one location, a heavy tail of
# groups run dozens to hundreds (national-figures.md: "the large groups run dozens to
# hundreds of homes"). ESTIMATE of the shape: (probability, smallest, largest); the mean
# is ~3.4 locations (log-uniform within bands), so 25,000 locations give ~7,300
# organisations ("several thousand").
ORGANISATION_SIZES: list[tuple[float, int, int]] = [
    (0.72, 1, 1),
    (0.20, 2, 4),
    (0.06, 5, 20),
    (0.015, 21, 80),
    (0.005, 81, 300),
]
# A group's locations stay in its home authority with this probability, else anywhere
# (ESTIMATE: regional groups dominate; national groups spread everywhere).
GROUP_STAYS_HOME = 0.4
SAME_TYPE_IN_GROUP = 0.85

# Placements. ESTIMATE from ONS 2023 (about 37 % of care home residents fund their own
# care): about one home in seven has only self-funders; one agency in five.
SELF_FUNDED_ONLY: dict[bool, float] = {True: 0.15, False: 0.20}
# How many authorities other than the host place people there (ESTIMATE: placements out
# of area are common for specialist and nursing care).
OTHER_PLACERS: list[tuple[int, float]] = [(0, 0.45), (1, 0.30), (2, 0.15), (3, 0.10)]
ENDED_PLACEMENT_SHARE = 0.05
# About 42 integrated care boards for 153 authorities (NHS England).
AUTHORITIES_PER_ICB = 3.6

# England's 153 authorities with adult social care duties: 21 county councils (E10),
# 63 unitaries (E06), 36 metropolitan districts (E08), 33 London boroughs (E09).
AUTHORITY_PREFIXES: list[tuple[str, int, float]] = [
    ("E10", 21, 4.0),
    ("E06", 63, 1.2),
    ("E08", 36, 1.5),
    ("E09", 33, 0.8),
]

_NAME_HEADS = ["Ash", "Oak", "Elm", "Beech", "Willow", "Rowan", "Holly", "Cedar", "Maple", "Birch", "Hazel", "Alder"]
_NAME_TAILS = ["field", "brook", "ley", "ton", "bury", "worth", "stead", "mere", "dale", "wood", "gate", "moor"]
_SERVICE_WORDS: dict[ServiceType, list[str]] = {
    ServiceType.care_home: ["House", "Lodge", "Court", "Residential Home"],
    ServiceType.nursing_home: ["Nursing Home", "Care Centre", "Manor"],
    ServiceType.home_care: ["Home Care", "Care at Home", "Homecare Services"],
    ServiceType.supported_living: ["Supported Living", "Community Services"],
    ServiceType.extra_care: ["Extra Care Court", "Housing with Care"],
    ServiceType.shared_lives: ["Shared Lives"],
}


@dataclass(frozen=True)
class Site:
    """A location as the world knows it: the directory record and its latent quality."""

    location: Location
    rating: Rating

    @property
    def location_id(self) -> str:
        return self.location.location_id

    @property
    def care_home(self) -> bool:
        return self.location.service_type in CARE_HOMES


@dataclass
class Population:
    authorities: list[Authority]  # local authorities first, then NHS commissioners
    sites: list[Site]
    placements: list[Placement]
    organisations: dict[str, list[str]] = field(default_factory=dict)  # provider id -> location ids
    icb_of: dict[str, str] = field(default_factory=dict)  # authority -> its NHS commissioner

    @property
    def local_authorities(self) -> list[Authority]:
        return [a for a in self.authorities if a.kind is AuthorityKind.local_authority]


def _weighted(rng: random.Random, weights: dict[T, float]) -> T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _place_name(rng: random.Random) -> str:
    return rng.choice(_NAME_HEADS) + rng.choice(_NAME_TAILS)


_COMPANY_MIDDLES = ["", " Care", " Healthcare", " Homes", " Community", " Lifestyle", " Residential", " Support"]
_COMPANY_ENDS = [" Ltd", " Limited", " Group Ltd", " Services Ltd", " Partnership LLP"]


def _company(number: int) -> str:
    parts = [_NAME_HEADS, _NAME_TAILS, _COMPANY_MIDDLES, _COMPANY_ENDS]
    chosen = []
    for words in parts:
        chosen.append(words[number % len(words)])
        number //= len(words)
    return "".join(chosen)


def _provider_name(provider_id: str, taken: set[str]) -> str:
    """An invented company name, derived from the provider ID (not drawn from the run's random
    stream, so that adding names left every seed's population and events as they were); the
    next free combination when it is taken, a number once all are."""
    number = int(provider_id.removeprefix("1-"))
    combinations = len(_NAME_HEADS) * len(_NAME_TAILS) * len(_COMPANY_MIDDLES) * len(_COMPANY_ENDS)
    for step in range(combinations):
        name = _company(number + step)
        if name not in taken:
            taken.add(name)
            return name
    name = f"{_company(number)} ({len(taken) + 1})"
    taken.add(name)
    return name


def _capacity(rng: random.Random, service: ServiceType) -> int:
    mean, sigma, low, high = CAPACITY[service]
    mu = math.log(mean) - sigma * sigma / 2  # so that the log-normal's mean is `mean`
    return max(low, min(high, round(rng.lognormvariate(mu, sigma))))


def _unique_cqc_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        candidate = f"1-{rng.randrange(10**9, 10**10)}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def build_authorities(rng: random.Random, count: int) -> tuple[list[Authority], dict[str, float]]:
    """`count` authorities in England's mix of kinds, with a size weight for each."""
    if count == 3:
        kinds = [("E10", 4.0), ("E06", 1.2), ("E08", 1.5)]  # a typical region's mix
    else:
        # England's proportions by largest remainder, so any count keeps the mix.
        total = sum(n for _, n, _ in AUTHORITY_PREFIXES)
        exact = [(prefix, count * n / total, weight) for prefix, n, weight in AUTHORITY_PREFIXES]
        counts = {prefix: int(x) for prefix, x, _ in exact}
        for prefix, _, _ in sorted(exact, key=lambda e: int(e[1]) - e[1])[: count - sum(counts.values())]:
            counts[prefix] += 1
        kinds = [(prefix, weight) for prefix, _, weight in exact for _ in range(counts[prefix])]
    authorities: list[Authority] = []
    weights: dict[str, float] = {}
    counters: dict[str, int] = {}
    names: set[str] = set()
    for prefix, weight in kinds:
        counters[prefix] = counters.get(prefix, 0) + 1
        code = f"{prefix}{counters[prefix]:06d}"
        name = _place_name(rng)
        while name in names:
            name = _place_name(rng) + " " + rng.choice(["North", "South", "East", "West"])
        names.add(name)
        suffix = {"E10": "County Council", "E09": "London Borough Council"}.get(prefix, "Council")
        authorities.append(Authority(ons_code=code, name=f"{name} {suffix}"))
        # Some authorities are several times the size of others (ESTIMATE: +-50 %).
        weights[code] = weight * rng.uniform(0.5, 1.5)
    return authorities, weights


def _commissioners(authorities: list[Authority]) -> tuple[list[Authority], dict[str, str]]:
    count = max(1, round(len(authorities) / AUTHORITIES_PER_ICB))
    icbs = [
        Authority(
            ons_code=f"E54{i + 1:06d}", name=f"Integrated Care Board {i + 1}", kind=AuthorityKind.nhs_commissioner
        )
        for i in range(count)
    ]
    # Neighbouring codes share a board, as neighbouring areas do.
    icb_of = {a.ons_code: icbs[i * count // len(authorities)].ons_code for i, a in enumerate(authorities)}
    return icbs, icb_of


def _org_size(rng: random.Random) -> int:
    draw = rng.random()
    for probability, low, high in ORGANISATION_SIZES:
        if draw < probability:
            # Log-uniform within the band: many groups of 25, few of 250.
            return round(math.exp(rng.uniform(math.log(low), math.log(high + 0.999) - 1e-9)) - 0.499)
        draw -= probability
    return 1


def build_population(rng: random.Random, locations: int, authorities: int) -> Population:
    las, weights = build_authorities(rng, authorities)
    icbs, icb_of = _commissioners(las)
    codes = [a.ons_code for a in las]
    code_weights = [weights[c] for c in codes]
    taken: set[str] = set()
    sites: list[Site] = []
    organisations: dict[str, list[str]] = {}
    names: dict[str, int] = {}
    company_names: set[str] = set()
    while len(sites) < locations:
        provider = _unique_cqc_id(rng, taken)
        provider_name = _provider_name(provider, company_names)
        size = min(_org_size(rng), locations - len(sites))
        home = rng.choices(codes, weights=code_weights)[0]
        primary = _weighted(rng, SERVICE_MIX)
        members: list[str] = []
        for index in range(size):
            service = primary if rng.random() < SAME_TYPE_IN_GROUP else _weighted(rng, SERVICE_MIX)
            host = (
                home if index == 0 or rng.random() < GROUP_STAYS_HOME else rng.choices(codes, weights=code_weights)[0]
            )
            base = f"{_place_name(rng)} {rng.choice(_SERVICE_WORDS[service])}"
            names[base] = names.get(base, 0) + 1
            name = base if names[base] == 1 else f"{base} {names[base]}"
            location = Location(
                location_id=_unique_cqc_id(rng, taken),
                provider_id=provider,
                service_type=service,
                capacity=_capacity(rng, service),
                host_authority=host,
                name=name,
                provider_name=provider_name,
            )
            sites.append(Site(location=location, rating=_weighted(rng, RATING_MIX)))
            members.append(location.location_id)
        organisations[provider] = members
    placements = [p for site in sites for p in _placements(rng, site.location, codes, icb_of)]
    return Population(
        authorities=las + icbs, sites=sites, placements=placements, organisations=organisations, icb_of=icb_of
    )


def _placements(rng: random.Random, location: Location, codes: list[str], icb_of: dict[str, str]) -> list[Placement]:
    care_home = location.service_type in CARE_HOMES
    if rng.random() < SELF_FUNDED_ONLY[care_home]:
        return []
    others = rng.choices([n for n, _ in OTHER_PLACERS], weights=[w for _, w in OTHER_PLACERS])[0]
    host_index = codes.index(location.host_authority)
    placers = [location.host_authority]
    for _ in range(others):
        # Mostly a neighbour (codes are in geographic order here), sometimes anywhere.
        if rng.random() < 0.7:
            index = min(len(codes) - 1, max(0, host_index + rng.randint(-5, 5)))
        else:
            index = rng.randrange(len(codes))
        if codes[index] not in placers:
            placers.append(codes[index])
    if location.service_type is ServiceType.nursing_home and rng.random() < 0.5:
        placers.append(icb_of[location.host_authority])  # NHS continuing healthcare
    funded = max(len(placers), round(location.capacity * rng.uniform(0.3, 0.8)))
    shares = [rng.random() + (1.5 if i == 0 else 0.0) for i in range(len(placers))]  # the host places most
    total = sum(shares)
    result: list[Placement] = []
    for authority, share in zip(placers, shares, strict=True):
        people = max(1, round(funded * share / total))
        status = PlacementStatus.ended if rng.random() < ENDED_PLACEMENT_SHARE else PlacementStatus.active
        result.append(
            Placement(
                authority=authority,
                location_id=location.location_id,
                people_placed=0 if status is PlacementStatus.ended else min(people, location.capacity),
                status=status,
            )
        )
    return result
