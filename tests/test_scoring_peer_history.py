"""Peer rules that know when their peers have too little history
(services/scoring/rules/peers.py, `min_peer_history_days`): a location counts among its
peers, and is judged, only once it has been observed that long. The demo's first Minor
alerts were a first concern judged "unusually high" against peers with none."""

from datetime import UTC, datetime, timedelta

from schemas.risk import Level
from services.scoring.model import assess
from tests.scoring_policies import Peers, feed, small_policy
from tests.test_scoring_model import CONCERN, HOME, ev

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULE = """
peers:
  - id: safeguarding_concerns_vs_peers
    description: An unusually high number of safeguarding concerns for its size
    level: minor
    when:
      - {type: safeguarding_concern}
    window_days: 365
    per_capacity: 10
    min_peers: 5
    high_z: 2.5
    min_history_days: 365
"""
KEY = ("safeguarding_concerns_vs_peers", "care_home")
WAITING = small_policy(RULE + "    min_peer_history_days: 180\n", version="peers-wait")
AT_ONCE = small_policy(RULE, version="peers-at-once")


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def concerns(days: list[float]) -> list:  # type: ignore[type-arg]
    return [ev("safeguarding_concern", day(d), CONCERN, f"sg-{i}") for i, d in enumerate(days)]


def test_a_first_concern_is_not_unusually_high_against_peers_with_no_history() -> None:
    # A cold start: every peer has a rate of 0 (no events yet) or a few days' worth.
    cold = {KEY: [0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.25, 0.0]}
    at_once, _ = feed(concerns([0.5, 1.0]), AT_ONCE, HOME, Peers(cold))
    assert at_once.current.level is Level.minor  # what the demo showed
    # With min_peer_history_days the peers have not been observed long enough to count
    # (the worker's sums hold none of them) and the location itself is not judged yet.
    waiting, outcomes = feed(concerns([0.5, 1.0]), WAITING, HOME, Peers({KEY: []}))
    assert waiting.current.level is Level.none
    assert all(u.new is None for o in outcomes for u in o.peer_updates)


def test_once_it_and_its_peers_have_the_history_it_is_judged() -> None:
    peers = Peers({KEY: [2.0, 2.5, 3.0, 3.5, 2.0, 2.5, 3.0, 3.5]})  # per 10 beds a year
    high = concerns([d * 4.0 for d in range(60)])  # 91 a year at 40 beds: 23 per 10
    state, outcomes = feed(high, WAITING, HOME, peers)
    contributed = [u for o in outcomes for u in o.peer_updates if u.new is not None]
    # Its own rate joins its peers' sums from its 180th day, not before.
    assert contributed and all(o.state.first_seen is not None for o in outcomes)
    first = next(o for o in outcomes if any(u.new is not None for u in o.peer_updates))
    assert first.state.clock is not None and first.state.first_seen is not None
    assert (first.state.clock - first.state.first_seen).days >= 180
    # And it is judged from then on too, though its rate was far above its peers' from
    # the start.
    early = [o for o in outcomes if o.state.clock is not None and o.state.clock < day(180)]
    assert early and all(o.state.current.level is Level.none for o in early)
    assert state.current.level is Level.minor
    (why,) = state.reasons()
    assert "unusually high" in why.description and "8 peers" in why.description


def test_a_location_without_the_history_contributes_nothing_to_its_peers_sums() -> None:
    state = None
    outcome = assess(state, HOME, concerns([0.5])[0], WAITING, {})
    assert outcome.peer_updates == []
    assert outcome.state.peer_rates == {}


LOW_ONLY = small_policy(
    """
peers:
  - id: safeguarding_concerns_vs_peers
    description: An unusually low number of safeguarding concerns for its size (possible under-reporting)
    level: minor
    when:
      - {type: safeguarding_concern}
    window_days: 365
    per_capacity: 10
    min_peers: 5
    high_z: null
    low_z: -2.0
    min_history_days: 365
    min_peer_history_days: 365
""",
    version="peers-low-only",
)


def test_a_low_side_only_rule_never_calls_a_high_number_unusual() -> None:
    peers = {KEY: [2.0, 2.5, 3.0, 3.5, 2.0, 2.5, 3.0, 3.5]}
    high, _ = feed(concerns([d * 4.0 for d in range(100)]), LOW_ONLY, HOME, Peers(peers))
    assert high.current.level is Level.none
    # One concern in a year and a half, against peers' 2-3.5 per 10 beds a year.
    low, _ = feed(concerns([0.5, 500.0]), LOW_ONLY, HOME, Peers(peers))
    assert low.current.level is Level.minor
    (why,) = low.reasons()
    assert "unusually low (possible under-reporting)" in why.description
