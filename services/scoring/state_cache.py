"""Decoded location states kept beside the state table, so that a location's next event
does not decode (and re-index) its whole history again, and so that a write knows which
weeks of its events changed (`state_split`).

The table stays the truth: an entry is used only while the table still holds the very
header it was decoded from (after a rebalance or a changelog recovery it does not), and
the least recently used entries are dropped beyond a bound.
"""

from collections import OrderedDict
from collections.abc import Callable

from services.scoring.model import LocationState
from services.scoring.state_split import Stored, Written, write


class StateCache:
    def __init__(self, decode: Callable[[bytes], tuple[LocationState, Stored | None]], size: int):
        self._decode = decode
        self._size = size
        self._entries: OrderedDict[str, tuple[bytes, LocationState, Stored | None]] = OrderedDict()
        # What is stored for a state taken out to be changed in place.
        self._taken: dict[str, Stored | None] = {}

    def read(self, location_id: str, raw: bytes | None) -> LocationState | None:
        if not raw:
            self._entries.pop(location_id, None)
            return None
        entry = self._entries.get(location_id)
        if entry is not None and (entry[0] is raw or entry[0] == raw):
            self._entries.move_to_end(location_id)
            return entry[1]
        state, stored = self._decode(raw)
        self._keep(location_id, raw, state, stored)
        return state

    def take(self, location_id: str, raw: bytes | None) -> LocationState | None:
        """As `read`, for a caller that will change the state in place: the entry is
        removed, so that a failure half-way can never leave a changed state cached beside
        the header it no longer matches. `write` (or `put_back`) keeps it again."""
        state = self.read(location_id, raw)
        entry = self._entries.pop(location_id, None)
        if entry is not None:
            self._taken[location_id] = entry[2]
        return state

    def put_back(self, location_id: str, raw: bytes | None, state: LocationState | None) -> None:
        """Keep an unchanged state taken with `take` (its event was not applied)."""
        if location_id in self._taken:
            stored = self._taken.pop(location_id)
            if raw and state is not None:
                self._keep(location_id, raw, state, stored)

    def write(self, location_id: str, state: LocationState) -> Written:
        """The parts to store for this state (the header, the changed weeks' chunks); the
        cache remembers them with it."""
        if location_id in self._taken:
            previous = self._taken.pop(location_id)
        else:
            entry = self._entries.get(location_id)
            previous = entry[2] if entry is not None else None
        written = write(state, previous)
        self._keep(location_id, written.header, state, written.stored)
        return written

    def _keep(self, location_id: str, raw: bytes, state: LocationState, stored: Stored | None) -> None:
        self._entries[location_id] = (raw, state, stored)
        self._entries.move_to_end(location_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
