"""Decoded location states kept beside the state table, so that a location's next event
does not decode (and re-index) its whole history again.

The table stays the truth: an entry is used only while the table still holds the very
bytes it was decoded from (after a rebalance or a changelog recovery it does not), and
the least recently used entries are dropped beyond a bound.
"""

from collections import OrderedDict
from collections.abc import Callable

from services.scoring.model import LocationState


class StateCache:
    def __init__(self, decode: Callable[[bytes], LocationState], encode: Callable[[LocationState], bytes], size: int):
        self._decode = decode
        self._encode = encode
        self._size = size
        self._entries: OrderedDict[str, tuple[bytes, LocationState]] = OrderedDict()

    def read(self, location_id: str, raw: bytes | None) -> LocationState | None:
        if not raw:
            self._entries.pop(location_id, None)
            return None
        entry = self._entries.get(location_id)
        if entry is not None and (entry[0] is raw or entry[0] == raw):
            self._entries.move_to_end(location_id)
            return entry[1]
        state = self._decode(raw)
        self._keep(location_id, raw, state)
        return state

    def take(self, location_id: str, raw: bytes | None) -> LocationState | None:
        """As `read`, for a caller that will change the state in place: the entry is
        removed, so that a failure half-way can never leave a changed state cached beside
        the bytes it no longer matches. `write` (or `put_back`) keeps it again."""
        state = self.read(location_id, raw)
        self._entries.pop(location_id, None)
        return state

    def put_back(self, location_id: str, raw: bytes | None, state: LocationState | None) -> None:
        """Keep an unchanged state taken with `take` (its event was not applied)."""
        if raw and state is not None:
            self._keep(location_id, raw, state)

    def write(self, location_id: str, state: LocationState) -> bytes:
        """The bytes to store for this state; the cache remembers them with it."""
        raw = self._encode(state)
        self._keep(location_id, raw, state)
        return raw

    def _keep(self, location_id: str, raw: bytes, state: LocationState) -> None:
        self._entries[location_id] = (raw, state)
        self._entries.move_to_end(location_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
