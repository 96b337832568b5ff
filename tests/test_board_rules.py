"""The board's pure parts: the provider concerns process's rules, need-to-know, the chart."""

from datetime import UTC, date, datetime, timedelta

import pytest

from schemas.directory import Location, Placement, PlacementStatus, ServiceType
from services.alerts.board.chart import level_chart
from services.alerts.board.concerns import Outcome, RecordedStep, Step, StepRefused, check_step, next_steps
from services.alerts.board.view import BoardFilter, apply_filter, counts, location_rows, visible_locations
from services.alerts.routing import Directory

TODAY = date(2026, 3, 27)


def steps(*pairs: tuple[Step, int]) -> list[RecordedStep]:
    return [RecordedStep(step, TODAY - timedelta(days=ago)) for step, ago in pairs]


def test_the_six_steps_come_in_order_with_update_meetings_as_needed_and_none_after_quality_assurance() -> None:
    assert next_steps([], False) == [Step.decision]
    assert next_steps(steps((Step.decision, 9)), False) == [Step.initial_meeting]
    findings = steps((Step.decision, 9), (Step.initial_meeting, 8), (Step.findings_meeting, 7))
    assert next_steps(findings, False) == [Step.update_meeting, Step.quality_assurance]
    updated = findings + steps((Step.update_meeting, 5), (Step.update_meeting, 4))
    assert next_steps(updated, False) == [Step.update_meeting, Step.quality_assurance]
    assured = updated + steps((Step.quality_assurance, 2))
    assert next_steps(assured, False) == [Step.formal_closure]
    assert next_steps(assured, True) == []


@pytest.mark.parametrize(
    ("step", "held_on", "outcome", "field"),
    [
        (Step.initial_meeting, TODAY, None, "step"),  # the decision comes first
        (Step.decision, TODAY + timedelta(days=1), None, "held_on"),
        (Step.decision, TODAY, Outcome.improved, "outcome"),  # an outcome only closes
    ],
)
def test_a_step_out_of_turn_is_refused_naming_the_field(
    step: Step, held_on: date, outcome: Outcome | None, field: str
) -> None:
    with pytest.raises(StepRefused) as refused:
        check_step([], False, step, held_on, TODAY, outcome)
    assert refused.value.field == field


def test_a_step_dated_before_the_previous_one_and_a_closure_without_outcome_are_refused() -> None:
    done = steps((Step.decision, 3))
    with pytest.raises(StepRefused, match="on or after the previous step"):
        check_step(done, False, Step.initial_meeting, TODAY - timedelta(days=4), TODAY, None)
    assured = steps(
        (Step.decision, 9), (Step.initial_meeting, 8), (Step.findings_meeting, 7), (Step.quality_assurance, 2)
    )
    with pytest.raises(StepRefused, match="outcome"):
        check_step(assured, False, Step.formal_closure, TODAY, TODAY, None)
    check_step(assured, False, Step.formal_closure, TODAY, TODAY, Outcome.improved)
    with pytest.raises(StepRefused, match="closed"):
        check_step(assured, True, Step.update_meeting, TODAY, TODAY, None)


def _directory() -> Directory:
    directory = Directory()
    for loc, host, kind in (("1-100000001", "E10000030", "care_home"), ("1-100000002", "E06000036", "home_care")):
        directory.put_location(
            Location(
                location_id=loc,
                provider_id="1-000111222",
                service_type=ServiceType(kind),
                capacity=10,
                host_authority=host,
            )
        )
    directory.put_placement(
        Placement(authority="E08000025", location_id="1-100000001", people_placed=1, status=PlacementStatus.active)
    )
    directory.put_placement(
        Placement(authority="E09000033", location_id="1-100000002", people_placed=1, status=PlacementStatus.ended)
    )
    return directory


def test_need_to_know_is_hosting_or_an_active_placement() -> None:
    directory = _directory()
    assert visible_locations(directory, None) is None
    assert visible_locations(directory, "E10000030") == {"1-100000001": ("host",)}
    assert visible_locations(directory, "E08000025") == {"1-100000001": ("placing",)}
    assert visible_locations(directory, "E09000033") == {}


def test_rows_filters_and_counts() -> None:
    directory = _directory()
    levels = [{"subject": "1-100000002", "provider_id": "1-000111222", "level": "major", "decided_at": 1.0e9}]
    rows = location_rows(directory, levels, None)
    assert [r.location_id for r in rows] == ["1-100000002", "1-100000001"]  # changed first
    assert counts(rows) == {"major": 1, "moderate": 0, "minor": 0, "none": 1}
    assert [r.location_id for r in apply_filter(rows, BoardFilter(service_type="care_home"))] == ["1-100000001"]
    placing = location_rows(directory, levels, "E08000025")
    assert apply_filter(placing, BoardFilter(role="host")) == []


def test_the_chart_says_in_words_what_it_draws() -> None:
    now = datetime(2026, 3, 27, tzinfo=UTC)
    svg = level_chart([(now - timedelta(days=10), "moderate"), (now - timedelta(days=2), "major")], now, "2 changes")
    assert svg.startswith("<svg") and 'role="img"' in svg and '<desc id="chart-desc">2 changes</desc>' in svg
    assert svg.count("<circle") == 2
    assert "<path" not in level_chart([], now, "No change")
