"""The worker's working copy of its locations' states: decoded, changed in memory, and
written back to the state table once per commit rather than once per event.

Kafka Streams puts a record cache in front of every state store for the same reason: a
key updated many times between commits costs one store write and one changelog record.
Here a busy location's state (a large agency's: ~300 KB encoded) was encoded, stored and
sent to the changelog at every event, the larger part of the worker's time; now it is
encoded once per commit interval however many events changed it.

A changed ("dirty") entry is the only copy of what its events did until it is written
back: it is never evicted, and the worker writes every dirty entry to the table before
it commits the offsets of the events that made them (`Scorer.settled`). The commit
holds the agent only while it takes each changed state's stored form (`unwritten`: a few
list copies); the encoding and the table writes follow while the agent goes on, and an
entry is clean once written only if no event changed it meanwhile (`written`). Clean entries
are dropped beyond a bound, least recently used first. The table is not read again for
a cached location: this worker is its only writer while it holds the partition, and
the entries of a partition are dropped when the partition is revoked (another worker
may change it, and a recovery may replace it).
"""

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.scoring.model import LocationState

# A state's stored form taken apart from the live state (state_codec.Detached).
D = TypeVar("D")


@dataclass(eq=False)
class _Entry:
    state: LocationState
    # The bytes the table holds for this state; None while the state is newer (dirty).
    raw: bytes | None


@dataclass(frozen=True)
class Unwritten(Generic[D]):
    """A changed state to write back: its bytes already (a rewrite), or its detached form
    to encode."""

    location_id: str
    entry: _Entry
    raw: bytes | None
    detached: D | None


class StateCache(Generic[D]):
    def __init__(
        self,
        decode: Callable[[bytes], LocationState],
        detach: Callable[[LocationState], D],
        encode: Callable[[D], bytes],
        size: int,
    ):
        self._decode = decode
        self._detach = detach
        self._encode = encode
        self._size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._dirty: set[str] = set()

    def get(self, location_id: str, load: Callable[[], bytes | None]) -> LocationState | None:
        """The location's current state: the working copy, else decoded from what
        `load` reads from the table (None: no state yet)."""
        entry = self._entries.get(location_id)
        if entry is not None:
            self._entries.move_to_end(location_id)
            return entry.state
        raw = load()
        if not raw:
            return None
        state = self._decode(raw)
        self._keep(location_id, _Entry(state, raw))
        return state

    def read(self, location_id: str, raw: bytes | None) -> LocationState | None:
        """As `get`, with the table's bytes already read."""
        return self.get(location_id, lambda: raw)

    def changed(self, location_id: str, state: LocationState) -> None:
        """The location's state changed (an event or a tick applied): written back at the
        next commit."""
        self._dirty.add(location_id)
        self._keep(location_id, _Entry(state, None))

    def rewrite(self, location_id: str) -> None:
        """Write the location's unchanged state to the table again at the next commit:
        a redelivered event is in it, and the record that stored it may have been lost
        in a crash while the offset about to be committed covers the event."""
        if location_id in self._entries:
            self._dirty.add(location_id)

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def unwritten(self) -> list[Unwritten[D]]:
        """Every changed state as it is now, for the caller to encode and write to the
        table (then `written`), while events go on changing the working copy."""
        changed = []
        for location_id in sorted(self._dirty):
            entry = self._entries[location_id]
            detached = None if entry.raw is not None else self._detach(entry.state)
            changed.append(Unwritten(location_id, entry, entry.raw, detached))
        return changed

    def encode(self, unwritten: Unwritten[D]) -> bytes:
        if unwritten.raw is not None:
            return unwritten.raw
        assert unwritten.detached is not None  # made so by `unwritten`
        return self._encode(unwritten.detached)

    def written(self, done: Iterable[tuple[Unwritten[D], bytes]]) -> None:
        """These bytes are in the table: each entry is clean unless an event changed it
        since (the newer state is then written at the next commit)."""
        for unwritten, raw in done:
            entry = unwritten.entry
            if self._entries.get(unwritten.location_id) is entry:
                entry.raw = raw
                self._dirty.discard(unwritten.location_id)
        self._evict()

    def drop(self, location_ids: Iterable[str]) -> None:
        """Forget these locations, changed or not (their partition went to another worker;
        what was not written back is scored again there from the committed offset)."""
        for location_id in list(location_ids):
            self._entries.pop(location_id, None)
            self._dirty.discard(location_id)

    def locations(self) -> list[str]:
        return list(self._entries)

    def _keep(self, location_id: str, entry: _Entry) -> None:
        self._entries[location_id] = entry
        self._entries.move_to_end(location_id)
        self._evict()

    def _evict(self) -> None:
        # Changed entries are skipped (moved to the recent end), never dropped.
        excess = min(len(self._entries) - self._size, len(self._entries) - len(self._dirty))
        while excess > 0:
            location_id = next(iter(self._entries))
            if location_id in self._dirty:
                self._entries.move_to_end(location_id)
            else:
                del self._entries[location_id]
                excess -= 1
