"""The policy file: the default policy loads and keeps to the source's rules of thumb, and a
broken policy is refused with its origin, the 1-based line of the problem and the problem.

Broken policies are made by editing one line of the default file, so every case is a
realistic mistake in a realistic file, and the expected line is found by searching the
edited text rather than written down.
"""

from pathlib import Path

import pytest

from schemas.risk import Level, LevelName
from services.scoring.policy import DEFAULT_POLICY, Policy, PolicyError, load_policy, parse_policy

TEXT = DEFAULT_POLICY.read_text()
ORIGIN = "kent-policy.yaml"
POLICY = load_policy(DEFAULT_POLICY)


def line_of(text: str, needle: str, after: str | None = None) -> int:
    """1-based line of the first line containing `needle` (after the line containing `after`)."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line)
    return next(i + 1 for i, line in enumerate(lines) if i >= start and needle in line)


def nth_line_of(text: str, needle: str, n: int) -> int:
    """1-based line of the n-th (1-based) line containing `needle`."""
    found = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return found[n - 1]


def edit(old: str, new: str, text: str = TEXT) -> str:
    assert text.count(old) == 1, f"the edit must be unambiguous: {old!r}"
    return text.replace(old, new, 1)


def refused(text: str, origin: str = ORIGIN) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, origin)
    return str(info.value)


def assert_names(message: str, line: int, *problems: str) -> None:
    """Some line of the message names the origin and line and all of the problems."""
    prefix = f"{ORIGIN}:{line}: "
    matching = [m for m in message.splitlines() if m.startswith(prefix)]
    assert matching, f"no error at {prefix!r} in:\n{message}"
    assert any(all(p in m for p in problems) for m in matching), f"{problems} not at {prefix!r} in:\n{message}"


# --- the default policy -----------------------------------------------------------------


def test_the_default_policy_loads_from_its_file_and_parses_the_same_from_text() -> None:
    assert isinstance(POLICY, Policy)
    assert parse_policy(TEXT, str(DEFAULT_POLICY)) == POLICY
    assert POLICY.version == "default-2026.12.1"


def test_the_default_policy_has_the_thresholds_the_model_tests_rely_on() -> None:
    assert POLICY.retention_days == 400
    assert POLICY.out_of_order_tolerance_minutes == 60
    assert POLICY.min_days_at_level == 14
    assert set(POLICY.levels) == {"minor", "moderate", "major"}
    for name, spec in POLICY.levels.items():
        assert spec.meaning.strip(), name
        assert spec.actions, name
        assert all(a.action.strip() and a.lead.strip() for a in spec.actions), name


def test_every_pattern_needs_at_least_two_events_one_off_poor_care_is_not_a_concern() -> None:
    assert POLICY.patterns
    for pattern in POLICY.patterns:
        assert pattern.enter_count >= 2, pattern.id
        for capacity in (None, 1, 5, 30, 100, 3000):
            enter = pattern.enter_threshold(capacity)
            assert enter >= pattern.enter_count >= 2, pattern.id
            assert 1 <= pattern.exit_threshold(capacity) < enter or pattern.exit_count is not None, pattern.id
    for rise in POLICY.rises:
        assert rise.min_recent_count >= 2, rise.id
        assert rise.enter_p <= rise.exit_p, rise.id
    for step in POLICY.triangulation.steps if POLICY.triangulation else []:
        assert step.min_kinds >= 2


def test_the_default_policy_has_every_rule_family_and_unique_rule_ids() -> None:
    assert {t.id for t in POLICY.triggers} == {
        "death_linked_to_safeguarding",
        "serious_abuse_or_neglect",
        "quality_enforcement",
        "criminal_proceedings_poor_care",
        "concerns_about_manager",
        "agency_staff_poor_induction",
    }
    assert {p.id for p in POLICY.patterns} == {"no_registered_manager", "repeated_concerns_about_manager"}
    assert {r.id for r in POLICY.rises} == {
        "complaints_rising",
        "concerns_rising",
        "medication_errors_rising",
        "medication_errors_burst",
        "neglect_rising",
        "injuries_rising",
        "missed_appointments_rising",
        "reports_falling",
        "missed_visits_rising",
        "missed_time_critical_burst",
        "missed_time_critical_rising",
        "agency_use_rising",
        "low_level_concerns_disproportionate",
        "safeguarding_concerns_rising",
    }
    assert {p.id for p in POLICY.peers} == {"safeguarding_concerns_vs_peers"}
    assert {p.of for p in POLICY.persistence} == {
        "complaints_rising",
        "concerns_rising",
        "medication_errors_rising",
        "neglect_rising",
        "missed_visits_rising",
        "missed_time_critical_rising",
        "low_level_concerns_disproportionate",
    }
    assert [c.id for c in POLICY.closed_culture] == ["closed_culture"]
    assert POLICY.accumulation is not None and POLICY.accumulation.id == "accumulated_concern"
    assert POLICY.triangulation is not None and POLICY.triangulation.id == "triangulated_concern"
    assert POLICY.ratings is not None and POLICY.organisation is not None
    ids = [r.id for r in (*POLICY.triggers, *POLICY.patterns, *POLICY.rises, *POLICY.peers)]
    ids += [r.id for r in (*POLICY.persistence, *POLICY.closed_culture)]
    ids += [POLICY.accumulation.id, POLICY.triangulation.id]
    assert len(ids) == len(set(ids))


def test_patterns_that_persist_escalate_from_minor_to_moderate_after_at_least_a_quarter() -> None:
    minor = {r.id for r in (*POLICY.patterns, *POLICY.rises) if Level[r.level] is Level.minor}
    for rule in POLICY.persistence:
        assert rule.of in minor and Level[rule.level] is Level.moderate, rule.id
        assert rule.persist_days >= 90 and rule.trend == "not_falling", rule.id


def test_the_manager_flag_needs_corroboration_from_another_kind_of_source() -> None:
    flag = next(t for t in POLICY.triggers if t.id == "concerns_about_manager")
    assert flag.corroborate is not None and flag.corroborate.within_days == 60
    assert POLICY.triangulation is not None
    kinds = POLICY.triangulation.source_kinds
    assert all(kinds[c.type] != kinds["workforce"] for c in flag.corroborate.by)


def test_every_own_history_rule_is_judged_against_its_peers_for_its_size_too() -> None:
    for rule in POLICY.rises:
        if rule.tail == "negative_binomial":
            assert rule.prior is not None and rule.prior.per_capacity == 10, rule.id
            assert rule.max_shape is not None and rule.min_ratio > 1, rule.id


def test_the_default_single_event_triggers_are_the_threshold_tables_major_and_moderate_rows() -> None:
    levels = {t.id: Level[t.level] for t in POLICY.triggers}
    assert levels["death_linked_to_safeguarding"] is Level.major
    assert levels["serious_abuse_or_neglect"] is Level.major
    assert levels["concerns_about_manager"] is Level.moderate
    assert all(t.hold_days >= POLICY.min_days_at_level for t in POLICY.triggers)


def test_low_level_concerns_alone_stay_at_minor_in_the_default() -> None:
    acc = POLICY.accumulation
    assert acc is not None
    assert acc.max_level is LevelName.minor and set(acc.enter) == {LevelName.minor}
    assert acc.per_capacity == 10
    assert 0 < acc.exit_ratio < 1


def test_accumulation_thresholds_above_max_level_are_refused_unless_the_file_raises_it() -> None:
    higher = edit("enter: {minor: 16}", "enter: {minor: 16, moderate: 32}")
    assert_names(refused(higher), line_of(higher, "accumulation:"), "above max_level minor")
    allowed = edit("  max_level: minor\n", "  max_level: moderate\n", higher)
    acc = parse_policy(allowed, ORIGIN).accumulation
    assert acc is not None and acc.max_level is LevelName.moderate


def test_without_max_level_the_accumulation_stops_at_minor() -> None:
    without = edit("  max_level: minor\n", "")
    acc = parse_policy(without, ORIGIN).accumulation
    assert acc is not None and acc.max_level is LevelName.minor


def test_the_minor_rows_three_sources_are_judged_for_size_against_own_history_and_peers() -> None:
    rule = next(r for r in POLICY.rises if r.id == "low_level_concerns_disproportionate")
    assert Level[rule.level] is Level.minor and rule.direction == "up" and rule.min_recent_count >= 2
    assert {c.type for c in rule.when} == {"contract_monitoring", "ccg_flag", "care_review"}
    assert rule.prior is not None and rule.prior.per_capacity == 10


# --- refusing a broken policy -----------------------------------------------------------


def test_an_unknown_field_on_a_condition_names_its_line() -> None:
    old = "      - {type: missed_visit, outcome: missed}\n    recent_days: 28"
    broken = edit(old, old.replace("outcome: missed}", "result: missed}"))
    message = refused(broken)
    assert_names(
        message,
        line_of(broken, "{type: missed_visit, result: missed}"),
        "rises.8.when.0",
        "missed_visit events have no field(s) ['result']",
    )


def test_an_unknown_field_in_an_accumulation_weight_names_its_line() -> None:
    broken = edit("{type: ccg_flag, severity: low}", "{type: ccg_flag, severty: low}")
    assert_names(refused(broken), line_of(broken, "severty: low"), "no field(s) ['severty']")


def test_an_unknown_event_type_names_its_line() -> None:
    broken = edit("{type: complaint, severity: low}", "{type: complaints, severity: low}")
    assert_names(
        refused(broken), line_of(broken, "{type: complaints, severity: low}"), "unknown event type 'complaints'"
    )


@pytest.mark.parametrize("pattern_id", [p.id for p in POLICY.patterns])
def test_an_enter_count_of_one_is_refused_at_that_patterns_line(pattern_id: str) -> None:
    # Replace the enter_count of this pattern only (the first one after its id).
    lines = TEXT.splitlines(keepends=True)
    start = line_of(TEXT, f"- id: {pattern_id}")
    target = line_of(TEXT, "enter_count:", after=f"- id: {pattern_id}")
    assert target > start
    indent = lines[target - 1][: len(lines[target - 1]) - len(lines[target - 1].lstrip())]
    lines[target - 1] = f"{indent}enter_count: 1\n"
    broken = "".join(lines)
    index = [p.id for p in POLICY.patterns].index(pattern_id)
    assert_names(refused(broken), target, f"patterns.{index}.enter_count", "greater than or equal to 2")


def test_exit_count_above_enter_count_is_refused_at_the_pattern() -> None:
    broken = edit("    exit_count: 1\n", "    exit_count: 3\n")
    assert_names(
        refused(broken),
        line_of(broken, "- id: no_registered_manager"),
        "exit_count must not exceed enter_count",
    )


@pytest.mark.parametrize(
    ("yaml_text", "bad_line", "problem"),
    [
        (
            edit("min_days_at_level: 14 ", "min_days_at_level: 14: 3 "),
            line_of(TEXT, "min_days_at_level:"),
            "mapping values are not allowed here",
        ),
        (
            edit(
                "    window_days: 180                   # JUDGEMENT\n    enter_count: 2\n",
                "\twindow_days: 180\n    enter_count: 2\n",
            ),
            line_of(TEXT, "window_days: 180"),
            "found character '\\t' that cannot start any token",
        ),
        (
            edit(
                "    min_recent_count: 4                # JUDGEMENT: never on one or two complaints",
                "     min_recent_count: 4",
            ),
            line_of(TEXT, "min_recent_count: 4", after="id: complaints_rising"),
            "expected <block end>",
        ),
        ("version: x\nretention_days: 400: 3\n", 2, "mapping values are not allowed here"),
    ],
    ids=["colon-in-value", "tab-indent", "bad-indent", "small"],
)
def test_bad_yaml_syntax_names_its_line(yaml_text: str, bad_line: int, problem: str) -> None:
    message = refused(yaml_text)
    assert message.startswith(f"{ORIGIN}:{bad_line}: not valid YAML: "), message
    assert problem in message


def test_a_policy_that_is_not_a_mapping_is_refused() -> None:
    assert refused("- just\n- a list\n").startswith(f"{ORIGIN}:1: a policy is a mapping")
    assert refused("").startswith(f"{ORIGIN}:1: a policy is a mapping")


def test_a_missing_level_description_names_the_level_line() -> None:
    meaning = next(
        line
        for line in TEXT.splitlines(keepends=True)
        if line.startswith("    meaning: People who use the service are safe,")
    )
    broken = edit("  minor:\n" + meaning, "  minor:\n")
    assert_names(refused(broken), line_of(broken, "  minor:"), "levels.minor.meaning", "Field required")


def test_an_empty_level_action_list_names_its_line() -> None:
    start = TEXT.index("  minor:\n")
    end = TEXT.index("\n\n", start)
    minor_actions = TEXT[TEXT.index("    actions:\n", start) : end]
    broken = TEXT[:start] + TEXT[start:end].replace(minor_actions, "    actions: []") + TEXT[end:]
    assert_names(refused(broken), line_of(broken, "actions: []"), "levels.minor.actions", "at least 1 item")


def test_a_level_left_out_names_the_levels_line() -> None:
    start = TEXT.index("  minor:\n")
    end = TEXT.index("\n\n", start)
    broken = TEXT[:start] + TEXT[end + 1 :]
    assert "  minor:" not in broken
    assert_names(refused(broken), line_of(broken, "levels:"), "levels must describe ['minor']")


def test_a_misspelt_level_names_its_line() -> None:
    broken = edit("  minor:\n", "  minr:\n")
    message = refused(broken)
    assert_names(message, line_of(broken, "  minr:"), "levels.minr")


def test_exit_p_below_enter_p_is_refused_at_the_rise() -> None:
    old = "    enter_p: 0.01\n    exit_p: 0.05\n"
    broken = edit(old, "    enter_p: 0.01\n    exit_p: 0.005\n")
    assert_names(
        refused(broken), line_of(broken, "- id: agency_use_rising"), "rises.11", "exit_p must be at least enter_p"
    )


def test_duplicate_rule_ids_name_the_line_of_the_duplicate() -> None:
    broken = edit("  - id: agency_use_rising", "  - id: complaints_rising")
    assert_names(
        refused(broken),
        nth_line_of(broken, "- id: complaints_rising", 2),
        "rule ids must be unique: ['complaints_rising']",
    )


def test_duplicate_rule_ids_across_families_name_the_line_of_the_later_one() -> None:
    # A pattern that reuses a trigger's id: the pattern is the duplicate.
    broken = edit("  - id: no_registered_manager\n", "  - id: serious_abuse_or_neglect\n")
    assert_names(
        refused(broken),
        nth_line_of(broken, "- id: serious_abuse_or_neglect", 2),
        "rule ids must be unique: ['serious_abuse_or_neglect']",
    )


def test_an_unknown_top_level_setting_names_its_line() -> None:
    broken = edit("min_days_at_level: 14 ", "min_days_at_levle: 14 ")
    assert_names(
        refused(broken), line_of(broken, "min_days_at_levle"), "min_days_at_levle", "Extra inputs are not permitted"
    )


def test_accumulation_thresholds_out_of_order_are_refused() -> None:
    broken = edit("enter: {minor: 16}", "enter: {minor: 12, moderate: 30, major: 24}")
    broken = edit("  max_level: minor\n", "  max_level: major\n", broken)
    assert_names(refused(broken), line_of(broken, "accumulation:"), "enter thresholds must rise")


def test_every_error_is_reported_each_with_its_line() -> None:
    broken = edit("min_days_at_level: 14 ", "min_days_at_level: -1 ")
    broken = edit("    enter_count: 2\n    exit_count: 1\n", "    enter_count: 0\n    exit_count: 1\n", broken)
    message = refused(broken)
    assert len(message.splitlines()) == 2, message
    assert_names(message, line_of(broken, "min_days_at_level:"), "min_days_at_level", "greater than or equal to 0")
    assert_names(message, line_of(broken, "enter_count: 0"), "enter_count", "greater than or equal to 2")


def test_load_policy_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "area.yaml"
    path.write_text(edit("    enter_count: 2\n    exit_count: 1\n", "    enter_count: 1\n    exit_count: 1\n"))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}:{line_of(path.read_text(), 'enter_count: 1')}: ")
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy(tmp_path / "missing.yaml")
