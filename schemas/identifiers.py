"""Identifier types shared by every contract.

Patterns are strict on purpose: an identifier that does not look like a CQC ID or an ONS
code is far more often a mis-mapped field (a name, a postcode) than a new format, and
letting it through would leak personal data or silently mis-route an alert.
"""

from typing import Annotated

from pydantic import StringConstraints

# CQC location and provider IDs: "1-" then 9 to 11 digits.
CQC_ID_PATTERN = r"^1-[0-9]{9,11}$"
LocationId = Annotated[str, StringConstraints(pattern=CQC_ID_PATTERN)]
ProviderId = Annotated[str, StringConstraints(pattern=CQC_ID_PATTERN)]

# ONS codes of bodies with adult safeguarding or commissioning duties in England:
# E06 unitary, E08 metropolitan district, E09 London borough, E10 county council;
# E38 CCG (historic) and E54 integrated care board for NHS commissioners.
ONS_CODE_PATTERN = r"^E(06|08|09|10|38|54)[0-9]{6}$"
OnsCode = Annotated[str, StringConstraints(pattern=ONS_CODE_PATTERN)]

# A producer-unique event id (CloudEvents `id`): no spaces, no free text.
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]

# CloudEvents `source`: a URI reference naming the upstream system, e.g.
# "urn:caresignal:source:kent-ecm" or "/systems/complaints".
SourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9:/._-]{3,128}$")]

# Where a source must link events about one person it sends an opaque pseudonym: a keyed
# hash in lowercase hex. Requiring hex of digest length means a name or an NHS number can
# never pass as a pseudonym.
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,64}$")]
