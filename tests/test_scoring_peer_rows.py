"""The worker's peer rows (services/scoring/peer_rows.py, `WorkerPeerSums`): its own
partitions' rows exact in memory and written back once per commit as the global table
holds them; the rows other workers write read from the table when `refresh_s` passed;
everything read again after a reassignment."""

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.peer_rows import WorkerPeerSums, row_partition
from services.scoring.peers import apply_peer_updates, peer_view
from services.scoring.rules.peer_stats import PeerUpdate
from tests.test_scoring_model import AGENCY, HOME
from tests.test_scoring_peer_sums import KEYS, PARTITIONS, POLICY, _updates


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


ALL = set(range(PARTITIONS))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 200), commit_every=st.integers(1, 9))
def test_written_back_rows_are_the_rows_the_table_had_per_event(seed: int, count: int, commit_every: int) -> None:
    sums = WorkerPeerSums(POLICY, PARTITIONS)
    stored: dict[str, bytes | None] = {}  # the global table, written at each commit
    table: dict[str, bytes | None] = {}  # what writing every event's rows made of it
    for index, (update, partition) in enumerate(_updates(seed, count)):
        sums.follow(stored, lambda: ALL)
        sums.apply([update], partition)
        apply_peer_updates(table, [update], partition)
        for location in (HOME, AGENCY):
            assert dict(sums.view(location)) == peer_view(table, POLICY, location, PARTITIONS)
        if index % commit_every == 0:
            stored.update(sums.write_back())
            assert stored == table
    stored.update(sums.write_back())
    assert stored == table and list(sums.write_back()) == []


def test_other_workers_rows_are_read_when_the_refresh_is_due_and_own_rows_never() -> None:
    clock = Clock()
    sums = WorkerPeerSums(POLICY, PARTITIONS, refresh_s=1.0, clock=clock)
    table: dict[str, bytes | None] = {}
    apply_peer_updates(table, [PeerUpdate(KEYS[0], None, (HOME.service_type.value, 4.0))], 5)
    sums.follow(table, lambda: {0, 1, 2})  # this worker scores 0-2; another 3-5
    assert sums.view(HOME)[(KEYS[0], HOME.service_type.value)].n == 1  # loaded at start
    sums.apply([PeerUpdate(KEYS[0], None, (HOME.service_type.value, 2.0))], 1)
    apply_peer_updates(table, [PeerUpdate(KEYS[0], None, (HOME.service_type.value, 6.0))], 4)
    # The table's copy of partition 1 is older than memory's: it must never overwrite it.
    clock.now = 0.5
    sums.follow(table, lambda: {0, 1, 2})
    assert sums.view(HOME)[(KEYS[0], HOME.service_type.value)].n == 2  # not due yet
    clock.now = 1.0
    sums.follow(table, lambda: {0, 1, 2})
    stats = sums.view(HOME)[(KEYS[0], HOME.service_type.value)]
    assert (stats.n, stats.total) == (3, 12.0)
    assert [row_partition(key) for key, _ in sums.write_back()] == [1]


def test_after_a_reassignment_every_row_is_read_from_the_table_again() -> None:
    sums = WorkerPeerSums(POLICY, PARTITIONS)
    table: dict[str, bytes | None] = {}
    sums.follow(table, lambda: ALL)
    sums.apply([PeerUpdate(KEYS[0], None, (AGENCY.service_type.value, 3.0))], 2)
    table.update(sums.write_back())
    sums.reassigned()  # partition 2 went to another worker, which wrote it since
    apply_peer_updates(table, [PeerUpdate(KEYS[0], None, (AGENCY.service_type.value, 1.0))], 2)
    sums.follow(table, lambda: {0, 1})
    stats = sums.view(AGENCY)[(KEYS[0], AGENCY.service_type.value)]
    assert (stats.n, stats.total) == (2, 4.0)


def test_a_partition_given_back_keeps_its_rows_in_memory_written_back_or_not() -> None:
    # A broker restart expires the worker's session and the group gives it its partitions
    # back: what it applied since the last write-back must not be replaced by the table's.
    sums = WorkerPeerSums(POLICY, PARTITIONS)
    table: dict[str, bytes | None] = {}
    sums.follow(table, lambda: {1, 2})
    sums.apply([PeerUpdate(KEYS[0], None, (AGENCY.service_type.value, 3.0))], 1)
    sums.reassigned(kept={1})  # 2 went to another worker, which wrote it since
    apply_peer_updates(table, [PeerUpdate(KEYS[0], None, (AGENCY.service_type.value, 1.0))], 2)
    sums.follow(table, lambda: {1})
    stats = sums.view(AGENCY)[(KEYS[0], AGENCY.service_type.value)]
    assert (stats.n, stats.total) == (2, 4.0)
    assert [row_partition(key) for key, _ in sums.write_back()] == [1]  # still to be written
