"""Which partition a location's records belong on."""

from kafka.partitioner.default import murmur2

from schemas.topics import SPECS

PARTITIONS = SPECS["events"].partitions
# Set on a record the scorer found on the wrong partition and sent on to the right one:
# "<topic>/<partition>/<offset>" of where it was found.
REROUTED_FROM_HEADER = "caresignal.rerouted-from"


def partition_of(key: str | bytes, partitions: int = PARTITIONS) -> int:
    """The partition the producers' default (murmur2) partitioner gives a key."""
    raw = key.encode() if isinstance(key, str) else key
    return int(murmur2(raw) & 0x7FFFFFFF) % partitions
