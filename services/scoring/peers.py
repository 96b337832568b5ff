"""Peer sums kept per (rule, service type, partition) in a global table.

Each partition's worker writes only its own rows, so no two writers share a key; a
location's peer view adds the rows of every partition.

`PeerSums` holds such rows for one process that owns every write to them (the replay):
decoded, with each service type's view kept until one of its rows is written.
"""

import functools
import json
from collections.abc import Iterator, Mapping, MutableMapping
from types import MappingProxyType

from schemas.directory import Location
from services.scoring.engine import compiled
from services.scoring.policy import Policy
from services.scoring.rules.peer_stats import PeerStats, PeerUpdate

PeerTable = MutableMapping[str, bytes | None]
_NOTHING: frozenset[str] = frozenset()


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


def _add(sums: tuple[int, float, float] | None, sign: int, rate: float) -> tuple[int, float, float]:
    """A row after one contribution joins (sign 1) or leaves (-1): what
    `apply_peer_updates` writes, so the same floats."""
    n, total, total_sq = sums if sums is not None else (0, 0.0, 0.0)
    return n + sign, total + sign * rate, total_sq + sign * rate * rate


class PeerSums:
    """Peer rows owned by one process, decoded, with every view cached per service type
    and brought up to date when read after a write (invalidated by writes, never by
    time): a view adds each key's rows in partition order, as `peer_view` does, so the
    same sums.

    Views are shared between readers: read-only."""

    def __init__(self, policy: Policy, partitions: int) -> None:
        self.policy = policy
        self.partitions = partitions
        self._rows: dict[str, tuple[int, float, float]] = {}
        self._views: dict[str, Mapping[tuple[str, str], PeerStats]] = {}
        # Per service type, the keys written since its view was last read.
        self._written: dict[str, set[str]] = {}

    def table(self) -> dict[str, bytes | None]:
        """The rows as the worker's global table holds them."""
        return {key: encode_row(sums) for key, sums in self._rows.items()}

    def row(self, key: str) -> tuple[int, float, float] | None:
        return self._rows.get(key)

    def replace(self, rows: Mapping[str, tuple[int, float, float]]) -> None:
        """Rows read from elsewhere (another worker's, through the global table): every
        view is worked out again when next read."""
        if not rows:
            return
        self._rows.update(rows)
        self._views.clear()
        self._written.clear()

    def view(self, location: Location | None) -> Mapping[tuple[str, str], PeerStats]:
        if location is None:
            return {}
        kind = location.service_type.value
        found = self._views.get(kind)
        written = self._written.pop(kind, _NOTHING)
        if found is not None and not written:
            return found
        # A copy: a view handed out before stays as it was.
        fresh = dict(found) if found is not None else {}
        for key, key_rows in _rows(tuple(compiled(self.policy).peer_keys), kind, self.partitions):
            if found is None or key in written:
                fresh[(key, kind)] = self._sum(key_rows)
        view = self._views[kind] = MappingProxyType(fresh)
        return view

    def _sum(self, rows: tuple[str, ...]) -> PeerStats:
        n, total, total_sq = 0, 0.0, 0.0
        for row in rows:
            part = self._rows.get(row)
            if part is not None:
                n, total, total_sq = n + part[0], total + part[1], total_sq + part[2]
        return PeerStats(n, total, total_sq)

    def apply(self, updates: list[PeerUpdate], partition: int) -> None:
        for key, rule_id, kind, sign, rate in row_changes(updates, partition):
            self._rows[key] = _add(self._rows.get(key), sign, rate)
            self._written.setdefault(kind, set()).add(rule_id)


def row_changes(updates: list[PeerUpdate], partition: int) -> Iterator[tuple[str, str, str, int, float]]:
    """Each row a partition's updates change: (row key, rule, service type, -1 for a
    contribution leaving or +1 for one arriving, its rate)."""
    for update in updates:
        for sign, contribution in ((-1, update.old), (1, update.new)):
            if contribution is not None:
                kind, rate = contribution
                yield peer_key(update.rule_id, kind, partition), update.rule_id, kind, sign, rate


def encode_row(sums: tuple[int, float, float]) -> bytes:
    """A row as the global table holds it (the JSON `apply_peer_updates` writes)."""
    return json.dumps(list(sums)).encode()


def decode_row(raw: bytes | None) -> tuple[int, float, float]:
    n, total, total_sq = json.loads(raw) if raw else (0, 0.0, 0.0)
    return int(n), float(total), float(total_sq)


def apply_peer_updates(table: PeerTable, updates: list[PeerUpdate], partition: int) -> None:
    for key, _, _, sign, rate in row_changes(updates, partition):
        table[key] = encode_row(_add(decode_row(table.get(key)), sign, rate))
