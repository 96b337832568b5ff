"""Peer sums kept per (rule, service type, partition) in a global table.

Each partition's worker writes only its own rows, so no two writers share a key; a
location's peer view adds the rows of every partition.
"""

import functools
import json
from collections.abc import Mapping, MutableMapping

from schemas.directory import Location
from services.scoring.engine import compiled
from services.scoring.policy import Policy
from services.scoring.rules.peer_stats import PeerStats, PeerUpdate

PeerTable = MutableMapping[str, bytes | None]


def peer_key(rule_id: str, service_type: str, partition: int) -> str:
    return f"{rule_id}|{service_type}|{partition}"


def peer_view(
    table: Mapping[str, bytes | None], policy: Policy, location: Location | None, partitions: int
) -> dict[tuple[str, str], PeerStats]:
    if location is None:
        return {}
    view = {}
    kind = location.service_type.value
    for key, rows in _rows(tuple(compiled(policy).peer_keys), kind, partitions):
        n, total, total_sq = 0, 0.0, 0.0
        for row in rows:
            raw = table.get(row)
            if raw:
                part = _sums(raw)
                n, total, total_sq = n + part[0], total + part[1], total_sq + part[2]
        view[(key, kind)] = PeerStats(n, total, total_sq)
    return view


@functools.lru_cache(maxsize=256)
def _rows(keys: tuple[str, ...], kind: str, partitions: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each key's rows, one per partition: the same strings for every event of a type."""
    return tuple((key, tuple(peer_key(key, kind, p) for p in range(partitions))) for key in keys)


@functools.lru_cache(maxsize=4096)
def _sums(raw: bytes) -> tuple[int, float, float]:
    # Every event reads every partition's rows; most have not changed since the last read.
    n, total, total_sq = json.loads(raw)
    return int(n), float(total), float(total_sq)


def apply_peer_updates(table: PeerTable, updates: list[PeerUpdate], partition: int) -> None:
    for update in updates:
        for sign, contribution in ((-1, update.old), (1, update.new)):
            if contribution is None:
                continue
            kind, rate = contribution
            key = peer_key(update.rule_id, kind, partition)
            raw = table.get(key)
            n, total, total_sq = json.loads(raw) if raw else (0, 0.0, 0.0)
            table[key] = json.dumps([n + sign, total + sign * rate, total_sq + sign * rate * rate]).encode()
