"""An event's content digest (services/scoring/evidence.py) never changes: states keep
its first bytes to tell a redelivery from a reused id, so a digest worked out differently
after an upgrade would make every redelivery of a kept event a "reused id". It is the
SHA-256 of json.dumps(content, sort_keys=True, separators=(",", ":"),
ensure_ascii=False), whatever encoder object the module keeps for it."""

import hashlib
import json
from datetime import UTC, datetime

import pytest

from schemas.events import SHORT_NAMES, EventParser
from schemas.examples import example_event
from services.scoring.evidence import content_digest

PARSER = EventParser()
WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _reference(content: dict[str, object]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize("short_type", sorted(SHORT_NAMES))
def test_the_digest_is_the_canonical_jsons_sha256(short_type: str) -> None:
    event = PARSER.parse_obj(example_event(short_type, time=WHEN), now=WHEN)
    content = event.model_dump(mode="json", exclude={"data": {"person_ref"}})
    assert content_digest(event) == _reference(content)
