"""The level chart's time axis: readable for one change or many, for changes stamped
ahead of the page's clock (the demo's), and over years. Labels are measured as the chart
measures them (a generous width per character); the browser test measures them again
with Chromium's own text layout."""

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.board.chart import LEFT, RIGHT, WIDTH, level_chart

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
DAY = timedelta(days=1)
# Wider than any glyph of the 14 px labels averages, whatever the font (Chromium's own widths
# are checked in the browser test).
CHAR_PX = 0.62 * 14


def axis_labels(svg: str) -> list[tuple[float, str, str]]:
    """(x, anchor, text) of every date label under the plot (the level labels are at its left)."""
    found = re.findall(r'<text[^>]* x="([\d.-]+)" y="188" text-anchor="(\w+)"[^>]*>([^<]*)</text>', svg)
    return [(float(x), anchor, text) for x, anchor, text in found]


def extent(x: float, anchor: str, text: str) -> tuple[float, float]:
    width = len(text) * CHAR_PX
    return {"start": (x, x + width), "end": (x - width, x), "middle": (x - width / 2, x + width / 2)}[anchor]


def point_xs(svg: str) -> list[float]:
    return [float(x) for x in re.findall(r'<circle cx="([\d.-]+)"', svg)]


CASES = {
    "one change now": [(NOW, "major")],
    "one change a minute ago": [(NOW - timedelta(minutes=1), "minor")],
    # The demo: simulated time runs ahead of the wall clock, so changes are in the page's future.
    "one change ahead of the clock": [(NOW + 40 * DAY, "moderate")],
    "changes ahead of the clock": [(NOW + 3 * DAY, "minor"), (NOW + 90 * DAY, "major")],
    "two changes a day apart": [(NOW - 2 * DAY, "minor"), (NOW - DAY, "major")],
    "a month": [(NOW - 30 * DAY, "minor"), (NOW - 10 * DAY, "moderate")],
    "many over years": [(NOW - n * 37 * DAY, ["minor", "major", "none"][n % 3]) for n in range(60, 0, -1)],
}


@pytest.mark.parametrize("points", CASES.values(), ids=CASES.keys())
def test_the_axis_dates_never_meet_and_stay_in_the_picture(points: list[tuple[datetime, str]]) -> None:
    svg = level_chart(points, NOW, "test")
    labels = axis_labels(svg)
    assert len(labels) >= 2, svg  # at least two dates: the reader can tell the span
    spans = sorted(extent(*label) for label in labels)
    for (_, right), (left, _) in itertools.pairwise(spans):
        assert right < left, labels
    assert spans[0][0] >= 0 and spans[-1][1] <= WIDTH, labels
    # Every change is on the plot, however far from the page's clock.
    assert all(LEFT - 0.1 <= x <= WIDTH - RIGHT + 0.1 for x in point_xs(svg)), point_xs(svg)
    assert len(point_xs(svg)) == len(points)


def test_the_dates_are_whole_days_weeks_months_or_years() -> None:
    week = axis_labels(level_chart([(NOW - 2 * DAY, "minor")], NOW, "test"))
    assert all(re.fullmatch(r"\d{1,2} \w{3} \d{4}", text) for _, _, text in week), week
    years = axis_labels(level_chart(CASES["many over years"], NOW, "test"))
    assert all(re.fullmatch(r"\d{4}", text) for _, _, text in years), years


def test_the_level_before_the_first_change_is_drawn_dashed() -> None:
    svg = level_chart([(NOW - 2 * DAY, "major")], NOW, "test", before="none")
    assert 'stroke-dasharray="6 4"' in svg
    assert "stroke-dasharray" not in level_chart([(NOW - 2 * DAY, "major")], NOW, "test")
