"""The worker's peer rows: held decoded in memory, its own partitions' rows written to
the global table once per commit, the other workers' rows read from it now and then.

Every event and tick reads a view of 14 keys x 6 partitions of peer rows. Read through
Faust's global table (key serialised, every partition's RocksDB asked) that was 31 % of
the worker's time in a profile of `bench/scoring.py --parts worker`, and every write
sent a changelog record. The rows of the partitions this worker scores change only here
and are exact in memory; another worker's rows reach the global table through its
changelog, a round trip late at best, and are read again at most every
`refresh_s` seconds.
"""

import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from services.scoring.peers import PeerSums, decode_row, encode_row, row_changes
from services.scoring.policy import Policy
from services.scoring.rules.peer_stats import PeerUpdate


def row_partition(key: str) -> int:
    """The event-topic partition a row belongs to (the last part of its key)."""
    return int(key.rsplit("|", 1)[1])


class WorkerPeerSums(PeerSums):
    def __init__(
        self,
        policy: Policy,
        partitions: int,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(policy, partitions)
        self.refresh_s = refresh_s
        self._clock = clock
        self._dirty: set[str] = set()
        self._owned: frozenset[int] | None = None  # None: to be loaded
        self._kept: frozenset[int] = frozenset()
        self._read_at = 0.0

    def apply(self, updates: list[PeerUpdate], partition: int) -> None:
        super().apply(updates, partition)
        self._dirty.update(key for key, *_ in row_changes(updates, partition))

    def reassigned(self, kept: Iterable[int] = ()) -> None:
        """The worker's partitions changed: before the next view every row is read from
        the table again, but those of the `kept` partitions (held before and after: their
        rows in memory are exact, and newer than the table's while not written back)."""
        self._owned = None
        self._kept = frozenset(kept)
        self._dirty = {key for key in self._dirty if row_partition(key) in self._kept}

    def follow(self, table: Mapping[str, bytes | None], owned: Callable[[], Iterable[int]]) -> None:
        """Before a view: load every row after a reassignment; else read the rows of
        partitions other workers score when `refresh_s` has passed."""
        now = self._clock()
        if self._owned is None:
            self._owned = frozenset(owned())
            kept = self._kept
            self._read(table.items(), lambda key: row_partition(key) not in kept)
        elif len(self._owned) < self.partitions and now - self._read_at >= self.refresh_s:
            mine = self._owned
            self._read(table.items(), lambda key: row_partition(key) not in mine)
        else:
            return
        self._read_at = now

    def write_back(self) -> Iterator[tuple[str, bytes]]:
        """The rows changed since the last write-back, encoded as the global table holds them."""
        for key in sorted(self._dirty):
            sums = self.row(key)
            assert sums is not None  # a dirty row was written by apply
            yield key, encode_row(sums)
        self._dirty.clear()

    def _read(self, rows: Iterable[tuple[str, bytes | None]], wanted: Callable[[str], bool]) -> None:
        self.replace({key: sums for key, raw in rows if wanted(key) and (sums := decode_row(raw)) != self.row(key)})
