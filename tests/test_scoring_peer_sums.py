"""The replay's decoded peer rows (services/scoring/peers.py, `PeerSums`): every view it
gives, cached per service type until a row of that type is written, is the one the
worker's `peer_view` reads from a table written by `apply_peer_updates`, to the bit."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.directory import ServiceType
from services.scoring.engine import compiled
from services.scoring.peers import PeerSums, apply_peer_updates, peer_view
from services.scoring.policy import DEFAULT_POLICY, load_policy
from services.scoring.rules.peer_stats import PeerUpdate
from tests.test_scoring_model import AGENCY, HOME

POLICY = load_policy(DEFAULT_POLICY)
PARTITIONS = 6
KEYS = compiled(POLICY).peer_keys
KINDS = (HOME.service_type.value, AGENCY.service_type.value)


def _updates(seed: int, count: int) -> list[tuple[PeerUpdate, int]]:
    """Contributions joining, moving and leaving, as locations' writes make them: each
    update's `old` is what that location last wrote to that key."""
    rng = random.Random(seed)
    written: dict[tuple[str, int, int], tuple[str, float] | None] = {}
    out = []
    for _ in range(count):
        key, partition, location = rng.choice(KEYS), rng.randrange(PARTITIONS), rng.randrange(12)
        old = written.get((key, partition, location))
        new = None if rng.random() < 0.15 else (rng.choice(KINDS), round(rng.uniform(0, 30), 6))
        if old == new:
            continue
        written[(key, partition, location)] = new
        out.append((PeerUpdate(key, old, new), partition))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 300), read_every=st.integers(1, 7))
def test_cached_views_are_the_tables_views_after_every_write(seed: int, count: int, read_every: int) -> None:
    sums = PeerSums(POLICY, PARTITIONS)
    table: dict[str, bytes | None] = {}
    for index, (update, partition) in enumerate(_updates(seed, count)):
        sums.apply([update], partition)
        apply_peer_updates(table, [update], partition)
        if index % read_every == 0:  # views read, cached, then written past
            for location in (HOME, AGENCY):
                assert dict(sums.view(location)) == peer_view(table, POLICY, location, PARTITIONS)
    for location in (HOME, AGENCY):
        assert dict(sums.view(location)) == peer_view(table, POLICY, location, PARTITIONS)
    assert sums.table() == table


def test_a_write_of_one_type_leaves_the_others_view_cached() -> None:
    sums = PeerSums(POLICY, PARTITIONS)
    home, agency = sums.view(HOME), sums.view(AGENCY)
    sums.apply([PeerUpdate(KEYS[0], None, (ServiceType.home_care.value, 2.5))], 3)
    assert sums.view(HOME) is home
    changed = sums.view(AGENCY)
    assert changed is not agency
    assert changed[(KEYS[0], ServiceType.home_care.value)].n == 1
    assert sums.view(None) == {}
