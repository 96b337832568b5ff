"""Scenario runs saved as JSON, so that a report can be written again without replaying."""

import json
from pathlib import Path
from typing import Any

from schemas.directory import Location
from schemas.risk import Level
from services.evaluation.changes import Change
from services.evaluation.scenarios import STANDARD, Scenario, ScenarioRun
from services.evaluation.signals import Observations


def _change(c: Change) -> list[Any]:
    return [c.scope, c.subject, c.time.isoformat(), c.sequence, c.old.name, c.new.name, list(c.rules)]


def _unchange(row: list[Any]) -> Change:
    from datetime import datetime

    scope, subject, at, seq, old, new, rules = row
    return Change(scope, subject, datetime.fromisoformat(at), seq, Level[old], Level[new], tuple(rules))


def save_run(run: ScenarioRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "scenario": vars(run.scenario),
        "truth": run.truth,
        "locations": [loc.model_dump(mode="json") for loc in run.locations.values()],
        "policy": [_change(c) for c in run.policy],
        "observations": run.observations.as_json(),
        "events": run.events,
        "replay_cpu_s": run.replay_cpu_s,
        "wall_s": run.wall_s,
        "workers": run.workers,
        "statuses": run.statuses,
    }
    path.write_text(json.dumps(data))


def load_run(path: Path) -> ScenarioRun:
    data = json.loads(path.read_text())
    locations = [Location.model_validate(x) for x in data["locations"]]
    return ScenarioRun(
        scenario=Scenario(**data["scenario"]),
        truth=data["truth"],
        locations={loc.location_id: loc for loc in locations},
        policy=[_unchange(r) for r in data["policy"]],
        observations=Observations.from_json(data["observations"]),
        events=data["events"],
        replay_cpu_s=data["replay_cpu_s"],
        wall_s=data["wall_s"],
        workers=data["workers"],
        statuses=data["statuses"],
    )


def policy_digest(policy_json: str) -> str:
    import hashlib

    return hashlib.sha256(policy_json.encode()).hexdigest()[:12]


def code_digest() -> str:
    """The simulator's, the scoring model's, the replay's and the observations' source: a
    run is reused only if none has changed since (the same seed gives other events under
    another simulator)."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    paths = [*sorted((root / "simulator").glob("*.py")), *sorted((root / "scoring").glob("*.py"))]
    paths += [root / "evaluation" / name for name in ("replay.py", "scenarios.py", "signals.py", "baseline.py")]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_path(folder: Path, scenario: Scenario, policy_json: str, code: str | None = None) -> Path:
    """Where a run of this scenario under this exact policy and code is kept."""
    s = scenario
    key = f"{policy_digest(policy_json)}-{code or code_digest()}"
    variant = "" if s.variant == STANDARD else f"-{s.variant}"
    return folder / f"{s.name}{variant}-seed{s.seed}-{s.locations or s.scale}-{s.days}d-{key}.json"
