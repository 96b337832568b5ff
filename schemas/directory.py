"""Directory (reference data) records, published to compacted topics.

The latest record per key is the truth: a placement that ends is published again with
`status: ended` rather than deleted, so that alert routing can tell "never placed" from
"no longer placed" and the audit trail keeps both.
"""

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from schemas.events import Contract
from schemas.identifiers import LocationId, OnsCode, ProviderId

# Registered names of services and authorities are public register data, not personal
# data; the character set still refuses anything resembling markup or a long narrative.
RegisteredName = Annotated[str, StringConstraints(min_length=1, max_length=160, pattern=r"^[\w .,'&()/+-]+$")]


class ServiceType(StrEnum):
    care_home = "care_home"
    nursing_home = "nursing_home"
    home_care = "home_care"
    supported_living = "supported_living"
    extra_care = "extra_care"
    shared_lives = "shared_lives"


class Location(Contract):
    location_id: LocationId
    provider_id: ProviderId
    service_type: ServiceType
    # Beds for a care home, people supported for home care: the denominator for rates.
    capacity: Annotated[int, Field(ge=1, le=100_000)]
    host_authority: OnsCode
    name: RegisteredName | None = None
    # The provider organisation's registered (company) name, as the regulator lists it with
    # each location: pages and emails name the organisation, not only its CQC provider ID.
    provider_name: RegisteredName | None = None
    active: bool = True

    @property
    def key(self) -> str:
        return self.location_id


class PlacementStatus(StrEnum):
    active = "active"
    ended = "ended"


class Placement(Contract):
    authority: OnsCode
    location_id: LocationId
    people_placed: Annotated[int, Field(ge=0, le=100_000)]
    status: PlacementStatus

    @property
    def key(self) -> str:
        # Location first so one location's placements sort and partition together.
        return f"{self.location_id}/{self.authority}"


class AuthorityKind(StrEnum):
    local_authority = "local_authority"
    nhs_commissioner = "nhs_commissioner"


class Authority(Contract):
    ons_code: OnsCode
    name: RegisteredName
    kind: AuthorityKind = AuthorityKind.local_authority

    @property
    def key(self) -> str:
        return self.ons_code


DirectoryRecord = Location | Placement | Authority
