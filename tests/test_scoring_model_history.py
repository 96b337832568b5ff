"""The pure model and the stream's time: old events, backfills and reused event ids."""

from dataclasses import replace
from datetime import timedelta

import msgspec

from schemas.risk import Level
from services.scoring.engine import compiled
from services.scoring.model import assess, rebuild, tick
from tests.test_scoring_model import HOME, MISSED, POLICY, SERIOUS, day, ev, level, rating, rules, run


def test_an_event_older_than_the_retention_of_the_streams_clock_is_expired_for_a_new_location() -> None:
    # A serious concern dated long before the stream's present: no state, so no clock of
    # its own, but the partition's clock is 500 days on.
    old = ev("safeguarding_concern", day(0), SERIOUS, "sg-2001")
    outcome = assess(None, HOME, old, POLICY, stream_clock=day(500))
    assert outcome.status == "expired" and outcome.change is None and outcome.state.evidence == []
    # Within the retention of the stream's clock it is history and counts.
    recent = assess(None, HOME, old, POLICY, stream_clock=day(300))
    assert recent.status == "applied" and recent.change is not None and recent.change.new_level == "major"


def test_the_locations_own_clock_still_expires_when_the_stream_clock_is_behind_it() -> None:
    state, _ = run([ev("missed_visit", day(500), MISSED)])
    outcome = assess(state, None, ev("missed_visit", day(99), MISSED), POLICY, stream_clock=day(10))
    assert outcome.status == "expired"


def test_changes_caused_by_a_backfill_event_say_so_and_a_live_event_clears_it() -> None:
    outcome = assess(None, HOME, ev("safeguarding_concern", day(0), SERIOUS), POLICY, backfill=True)
    assert outcome.change is not None and outcome.change.backfill is True and outcome.state.backfill is True
    # Time passing on history only: the fall is a decision about the past as well.
    fallen = tick(outcome.state, HOME, day(120), POLICY)
    assert level(fallen.state) is Level.none
    assert fallen.change is not None and fallen.change.backfill is True

    live = assess(outcome.state, HOME, ev("missed_visit", day(1), MISSED), POLICY)
    assert live.state.backfill is False
    fallen_live = tick(live.state, HOME, day(120), POLICY)
    assert fallen_live.change is not None and fallen_live.change.backfill is False


def test_a_live_change_is_not_marked_backfill() -> None:
    outcome = assess(None, HOME, ev("safeguarding_concern", day(0), SERIOUS), POLICY)
    assert outcome.change is not None and outcome.change.backfill is False


def test_a_reused_event_id_with_other_content_is_told_apart_from_a_redelivery() -> None:
    first = ev("missed_visit", day(0), MISSED, "mv-1")
    state, _ = run([first], HOME)
    again = assess(state, HOME, first, POLICY)
    assert again.status == "duplicate" and again.state == state
    reused = assess(state, HOME, ev("safeguarding_concern", day(1), SERIOUS, "mv-1"), POLICY)
    assert reused.status == "reused_id" and reused.state == state and reused.change is None
    moved = assess(state, HOME, ev("missed_visit", day(0) + timedelta(minutes=5), MISSED, "mv-1"), POLICY)
    assert moved.status == "reused_id"


def test_evidence_kept_before_digests_counts_any_same_id_as_a_redelivery() -> None:
    first = ev("missed_visit", day(0), MISSED, "mv-1")
    state, _ = run([first], HOME)
    # A state migrated from the previous engine's JSON may hold evidence without a digest.
    undigested = [msgspec.structs.replace(e, digest=b"") for e in state.evidence]
    legacy = replace(state, timeline=rebuild(compiled(POLICY), undigested))
    outcome = assess(legacy, HOME, ev("safeguarding_concern", day(1), SERIOUS, "mv-1"), POLICY)
    assert outcome.status == "duplicate"


def test_a_rating_older_than_the_retention_is_kept_as_long_as_the_rating_rule_looks_back() -> None:
    # A regulator's ratings file loads years of ratings at once: the one from 600 days ago
    # still counts towards "Requires improvement more than once" (the rule looks back 3x
    # the retention); one from beyond that is expired.
    older = rating("requires_improvement", "2024-06-01", day(0), "r-2024")
    newer = rating("requires_improvement", "2026-01-20", day(600), "r-2026")
    state, _ = run([newer], HOME)
    kept = assess(state, HOME, older, POLICY, stream_clock=day(600))
    assert kept.status in ("applied", "late")
    assert level(kept.state) is Level.minor and "requires_improvement_repeatedly" in rules(kept.state)
    ancient = rating("requires_improvement", "2021-01-01", day(-700), "r-2021")
    assert assess(kept.state, HOME, ancient, POLICY, stream_clock=day(600)).status == "expired"


def test_an_old_rating_is_no_sign_of_a_long_history_of_events() -> None:
    # Rises and "unusually low" peers need a history of the location's flow of events; a
    # rating published long ago says nothing about how long that flow has been watched.
    state, _ = run([rating("good", "2024-06-01", day(0), "r-old"), ev("missed_visit", day(600), MISSED)], HOME)
    assert state.first_seen == day(600)
