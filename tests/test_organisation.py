"""Provider organisation roll-up (pure) and the scorer's refusal of a bad policy."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.risk import LevelChange, LevelName
from services.cli import main
from services.scoring.organisation import OrganisationState, roll_up
from services.scoring.policy import DEFAULT_POLICY, load_policy

POLICY = load_policy(DEFAULT_POLICY)
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def change(location: str, seq: int, old: str, new: str, at: datetime) -> LevelChange:
    return LevelChange(
        change_id=f"{location}:{seq}",
        sequence=seq,
        location_id=location,
        provider_id="1-000111222",
        old_level=LevelName(old),
        new_level=LevelName(new),
        direction="escalation" if new > old else "de-escalation",
        score=0.0,
        reasons=[],
        actions=[],
        meaning="",
        policy_version=POLICY.version,
        decided_at=at,
    )


def test_an_organisation_change_moved_by_a_backfill_change_is_marked_backfill() -> None:
    state, _ = roll_up(None, change("1-100000001", 1, "none", "major", T0), POLICY)
    backfilled = change("1-100000002", 1, "none", "major", T0).model_copy(update={"backfill": True})
    _, out = roll_up(state, backfilled, POLICY)
    assert out is not None and out.scope == "organisation" and out.backfill is True
    _, live = roll_up(state, change("1-100000002", 1, "none", "major", T0), POLICY)
    assert live is not None and live.backfill is False


def test_one_troubled_location_is_not_a_corporate_failing_two_are() -> None:
    state, out = roll_up(None, change("1-100000001", 1, "none", "major", T0), POLICY)
    assert out is None
    state, out = roll_up(state, change("1-100000002", 1, "none", "minor", T0), POLICY)
    assert out is None  # Minor is below the roll-up's Moderate
    state, out = roll_up(state, change("1-100000002", 2, "minor", "moderate", T0 + timedelta(days=1)), POLICY)
    assert out is not None and out.scope == "organisation" and out.new_level == "moderate"
    assert out.locations == ["1-100000001", "1-100000002"] and out.change_id == f"org:1-000111222:{POLICY.version}:1"
    assert out.reasons[0].family == "organisation" and out.actions


def test_redelivered_changes_are_ignored_and_the_level_holds_before_falling() -> None:
    state: OrganisationState | None = None
    for loc in ("1-100000001", "1-100000002"):
        state, _ = roll_up(state, change(loc, 1, "none", "major", T0), POLICY)
    assert state is not None and state.level.name == "moderate"
    again, out = roll_up(state, change("1-100000001", 1, "none", "major", T0), POLICY)
    assert out is None and again == state
    early, out = roll_up(state, change("1-100000001", 2, "major", "none", T0 + timedelta(days=3)), POLICY)
    assert out is None and early.level.name == "moderate"  # within min_days_at_level
    _, out = roll_up(early, change("1-100000002", 2, "major", "none", T0 + timedelta(days=20)), POLICY)
    assert out is not None and out.direction == "de-escalation" and out.new_level == "none"


def test_a_bad_policy_stops_the_scorer_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(DEFAULT_POLICY.read_text().replace("min_days_at_level: 14", "min_days_at_level: soon"))
    monkeypatch.setenv("CARESIGNAL_SCORING_POLICY_FILE", str(bad))
    assert main(["scorer"]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if text.startswith("min_days_at_level"))
    assert f"{bad}:{line}: min_days_at_level" in err
    assert main(["policy", "check", str(bad)]) == 2
    assert main(["policy", "check", str(DEFAULT_POLICY)]) == 0
