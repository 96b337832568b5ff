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
            "- {type: missed_visit, outcome: missed}\n    recent_days: 28",
            "- {type: missed_visit, result: missed}\n    recent_days: 28",
            "{type: missed_visit, result: missed}",
            "no field(s) ['result']",
        ),
        (
            "    enter_count: 2\n    exit_count: 1\n",
            "    enter_count: 1\n    exit_count: 1\n",
            "enter_count: 1",
            "greater than or equal to 2",
        ),
        # A mistyped value would match nothing and silently disable its rule.
        (
            "- {type: missed_visit, outcome: missed}\n    recent_days: 28",
            "- {type: missed_visit, outcome: mised}\n    recent_days: 28",
            "outcome: mised}",
            "missed_visit.outcome: 'mised' is not one of ['missed', 'late']",
        ),
        (
            "abuse_type: [neglect, organisational]}",
            "abuse_type: [neglect, organisation]}",
            "abuse_type: [neglect, organisation]}",
            "safeguarding_concern.abuse_type: 'organisation' is not one of",
        ),
        (
            "{type: safeguarding_concern, serious: true}",
            "{type: safeguarding_concern, serious: yes please}",
            "serious: yes please}",
            "safeguarding_concern.serious: 'yes please' is not true or false",
        ),
        (
            "agency_staff_share: {gte: 0.3}, induction_gaps: true}",
            "agency_staff_share: high, induction_gaps: true}",
            "agency_staff_share: high,",
            "workforce.agency_staff_share: 'high' is not a number",
        ),
        (
            "{type: missed_visit, outcome: late, time_critical: true, minutes_late: {gte: 60}}",
            "{type: missed_visit, outcome: {gte: 60}, time_critical: true, minutes_late: {gte: 60}}",
            "outcome: {gte: 60}",
            "missed_visit.outcome: a range (gte/lte) applies only to numbers",
        ),
        (
            "{type: provider_incident, category: medication_error}",
            "{type: provider_incident, category: medication_error, person_ref: abc}",
            "person_ref: abc",
            "provider_incident.person_ref cannot be matched on by a rule",
        ),
        (
            "{type: care_review, finding_level: [low, medium]}\n    recent_days",
            "{type: care_review, finding_level: [low, meduim]}\n    recent_days",
            "finding_level: [low, meduim]",
            "care_review.finding_level: 'meduim' is not one of ['none', 'low', 'medium', 'high']",
        ),
        (
            "    enter_p: 0.01\n    exit_p: 0.05\n",
            "    enter_p: 0.01\n    exit_p: 0.001\n",
            "id: agency_use_rising",
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


def test_every_condition_value_in_the_default_policy_is_one_the_contract_allows() -> None:
    # Each enum value a condition names is a value some real event can carry.
    from services.scoring.policy_conditions import CONTRACT_FIELDS

    policy = load_policy(DEFAULT_POLICY)
    conditions = [c for rule in (*policy.triggers, *policy.patterns, *policy.rises, *policy.peers) for c in rule.when]
    conditions += [c for t in policy.triggers if t.corroborate is not None for c in t.corroborate.by]
    conditions += [c for r in policy.closed_culture for c in (*r.voices.when, *r.reports.when)]
    assert policy.accumulation is not None and policy.triangulation is not None
    conditions += [c for w in policy.accumulation.weights for c in w.when] + list(policy.triangulation.concerns)
    for condition in conditions:
        for name, wanted in condition.constraints.items():
            spec = CONTRACT_FIELDS[condition.type][name]
            assert spec is not None
            if spec.values:
                assert set(wanted if isinstance(wanted, list) else [wanted]) <= set(spec.values)


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        # A second `when` replaces the first: the first conditions would silently vanish.
        (
            "    hold_days: 90                      # JUDGEMENT\n    when:\n      - {type: safeguarding_concern, serious: true}\n",
            "    hold_days: 90\n    when:\n      - {type: safeguarding_concern, serious: true}\n"
            "    when:\n      - {type: complaint}\n",
            "when",
            "      - {type: complaint}\n",
        ),
        ("min_days_at_level: 14 ", "min_days_at_level: 14\nmin_days_at_level: 0\n#", "min_days_at_level", None),
        (
            "{type: missed_visit, outcome: missed, time_critical: true}",
            "{type: missed_visit, outcome: missed, time_critical: true, outcome: late}",
            "outcome",
            None,
        ),
    ],
    ids=["block", "top-level", "flow"],
)
def test_duplicate_keys_are_refused_with_their_line(old: str, new: str, key: str, needle: str | None) -> None:
    assert TEXT.count(old) == 1
    broken = TEXT.replace(old, new, 1)
    message = refused(broken)
    lines = broken.splitlines()
    if needle is None:
        at = [
            i for i, line in enumerate(lines, 1) if f"{key}:" in line and (key != "outcome" or "outcome: late}" in line)
        ]
        expected = at[-1]
    else:
        expected = line_of(broken, needle.strip()) - 1
    assert message.startswith(f"area.yaml:{expected}: duplicate key {key!r}"), message


def test_the_policy_version_must_fit_in_a_change_id() -> None:
    broken = TEXT.replace('version: "default-2026.12.1"', 'version: "kent: 2026"', 1)
    assert "area.yaml:" in refused(broken) and "version" in refused(broken)
