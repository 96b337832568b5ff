"""Which partition a location's records belong on."""

from kafka.partitioner.default import murmur2

from schemas.topics import SPECS

PARTITIONS = SPECS["events"].partitions


def partition_of(key: str, partitions: int = PARTITIONS) -> int:
    """The partition the producers' default (murmur2) partitioner gives a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
