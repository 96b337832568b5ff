"""The scorer's tables as Kafka holds them: their names, their changelog topics, and the
bytes of their keys and values, for the worker and for the replay that writes them."""

import json
from datetime import datetime

STATE_TABLE = "location-state"
DIRECTORY_TABLE = "directory-locations"
PEER_SUMS_TABLE = "peer-sums"
ORGANISATION_TABLE = "organisation-state"
PARTITION_CLOCKS_TABLE = "partition-clocks"


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog (`Collection._changelog_topic_name`)."""
    return f"{app_id}-{table}-changelog"


def table_key(key: str) -> bytes:
    """A table key as Faust serialises a `str` key into the changelog: JSON."""
    return json.dumps(key).encode()


def clock_record(clock: datetime) -> bytes:
    """A partition's clock as the partition-clocks table holds it."""
    return json.dumps({"clock": clock.isoformat()}).encode()


def read_clock(raw: bytes) -> datetime:
    return datetime.fromisoformat(json.loads(raw)["clock"])
