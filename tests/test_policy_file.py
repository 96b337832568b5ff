"""The policy file: the default loads and keeps to the source; a broken one is refused
with the file, the line and the problem."""

import pytest

from services.scoring.policy import DEFAULT_POLICY, PolicyError, load_policy, parse_policy

TEXT = DEFAULT_POLICY.read_text()


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def refused(text: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "area.yaml")
    return str(info.value)


def test_the_default_policy_loads_and_one_off_poor_care_is_never_a_pattern() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.version and set(policy.levels) == {"minor", "moderate", "major"}
    assert all(p.enter_count >= 2 for p in policy.patterns)
    assert {t.level for t in policy.triggers} == {"major", "moderate"}


@pytest.mark.parametrize(
    ("old", "new", "needle", "problem"),
    [
        (
            "- {type: missed_visit, outcome: missed}\n  - id: repeated_missed_time",
            "- {type: missed_visit, result: missed}\n  - id: repeated_missed_time",
            "{type: missed_visit, result: missed}",
            "no field(s) ['result']",
        ),
        (
            "    enter_count: 3                     # JUDGEMENT\n    when:\n      - {type: missed_visit, outcome: missed}\n",
            "    enter_count: 1\n    when:\n      - {type: missed_visit, outcome: missed}\n",
            "enter_count: 1",
            "greater than or equal to 2",
        ),
        (
            "    exit_p: 0.05\n    min_history_days: 180              # JUDGEMENT\n",
            "    exit_p: 0.001\n    min_history_days: 180              # JUDGEMENT\n",
            "id: complaints_rising",
            "exit_p must be at least enter_p",
        ),
        ("  - id: agency_use_rising", "  - id: complaints_rising", "rises:", "rule ids must be unique"),
        (
            "{type: complaint, severity: low}, {type: contract",
            "{type: complaints, severity: low}, {type: contract",
            "{type: complaints, severity: low}",
            "unknown event type 'complaints'",
        ),
    ],
)
def test_a_broken_policy_names_the_line_and_the_problem(old: str, new: str, needle: str, problem: str) -> None:
    assert old in TEXT
    broken = TEXT.replace(old, new, 1)
    message = refused(broken)
    assert problem in message
    assert f"area.yaml:{line_of(broken, needle)}:" in message or "unique" in problem


def test_bad_yaml_and_a_missing_level_are_refused() -> None:
    assert "area.yaml:2: not valid YAML" in refused("version: x\nretention_days: 400: 3\n")
    without_minor = TEXT.replace("  minor:\n    meaning:", "  minr:\n    meaning:", 1)
    assert "levels" in refused(without_minor)
