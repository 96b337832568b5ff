"""A subject's level over time as a server-rendered SVG step chart. Pure.

The chart is decoration for sighted readers: the page gives the same points as a table,
and the SVG carries a title and a description for assistive technology.

The time axis runs from the first change (or a week before its end, whichever is earlier)
to now or the last change, whichever is later: changes stamped ahead of the page's clock
(the demo's simulated time runs ahead of the wall clock) stay on the chart, and one change
still gives an axis a week long. Its dates are ticks at whole days, weeks, months or years,
spaced so that no two labels can meet, and only where a label fits inside the picture.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from schemas.risk import Level

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 90, 16, 12, 36
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
MIN_SPAN = timedelta(days=7)
FONT_PX = 14
# A generous width per character (GDS Transport and its fallbacks average under 0.6 em),
# and the least space between two labels.
CHAR_PX = 0.62 * FONT_PX
LABEL_GAP_PX = 16
# GOV.UK palette; the line is black so it never relies on colour alone.
BANDS = {Level.none: "#f3f2f1", Level.minor: "#fff7bf", Level.moderate: "#fcd6c3", Level.major: "#f6d7d2"}


@dataclass(frozen=True)
class Tick:
    at: datetime
    x: float
    label: str

    @property
    def half_width(self) -> float:
        return len(self.label) * CHAR_PX / 2


def axis_span(points: Sequence[tuple[datetime, str]], now: datetime) -> tuple[datetime, datetime]:
    """The axis's first and last instants (see the module's docstring)."""
    start = min(points[0][0], now) if points else now
    end = max(points[-1][0], now) if points else now
    return min(start, end - MIN_SPAN), end


def _add_months(at: datetime, months: int) -> datetime:
    index = at.year * 12 + at.month - 1 + months
    return at.replace(year=index // 12, month=index % 12 + 1, day=1)


def _first_tick(start: datetime, days: int, months: int) -> datetime:
    midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if months:
        # Aligned as a reader expects: quarters in January, April...; years ending 0 or 5.
        if months >= 12:
            every = months // 12
            first = midnight.replace(year=midnight.year // every * every, month=1, day=1)
        else:
            first = midnight.replace(month=(midnight.month - 1) // months * months + 1, day=1)
        while first < start:
            first = _add_months(first, months)
        return first
    if days == 7:
        midnight -= timedelta(days=midnight.weekday())  # weeks start on Monday
    while midnight < start:
        midnight += timedelta(days=days)
    return midnight


# (days, months, shortest interval in days, label format), finest first.
STEPS = (
    (1, 0, 1, "%-d %b %Y"),
    (2, 0, 2, "%-d %b %Y"),
    (7, 0, 7, "%-d %b %Y"),
    (14, 0, 14, "%-d %b %Y"),
    (0, 1, 28, "%b %Y"),
    (0, 2, 59, "%b %Y"),
    (0, 3, 89, "%b %Y"),
    (0, 6, 181, "%b %Y"),
    (0, 12, 365, "%Y"),
    (0, 60, 1826, "%Y"),
)


def ticks(start: datetime, end: datetime) -> list[Tick]:
    """Dated ticks between start and end: the finest step whose labels cannot touch."""
    span_s = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return LEFT + PLOT_W * (at - start).total_seconds() / span_s

    for days, months, shortest_days, fmt in STEPS:
        widest = len(datetime(2026, 12, 30, tzinfo=UTC).strftime(fmt)) * CHAR_PX
        if PLOT_W * shortest_days * 86_400 / span_s < widest + LABEL_GAP_PX:
            continue
        found: list[Tick] = []
        at = _first_tick(start, days, months)
        while at <= end:
            tick = Tick(at, x(at), at.strftime(fmt))
            # Centred under its instant, and wholly inside the picture.
            if tick.x - tick.half_width >= 0 and tick.x + tick.half_width <= WIDTH:
                found.append(tick)
            at = _add_months(at, months) if months else at + timedelta(days=days)
        return found
    return []


def level_chart(
    points: Sequence[tuple[datetime, str]], now: datetime, description: str, before: str | None = None
) -> str:
    """SVG markup for the given (time, level) points, each level held until the next;
    `before` is the level the first change left, drawn dashed from the axis's start."""
    band_h = PLOT_H / len(Level)

    def y(level: Level) -> float:
        return TOP + PLOT_H - (int(level) + 0.5) * band_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="board-chart" role="img" '
        'aria-labelledby="chart-title chart-desc" focusable="false">',
        '<title id="chart-title">Risk level over time</title>',
        f'<desc id="chart-desc">{escape(description)}</desc>',
    ]
    for level in Level:
        top = TOP + PLOT_H - (int(level) + 1) * band_h
        parts.append(f'<rect x="{LEFT}" y="{top:.1f}" width="{PLOT_W}" height="{band_h:.1f}" fill="{BANDS[level]}"/>')
        parts.append(
            f'<text x="{LEFT - 8}" y="{y(level) + 5:.1f}" text-anchor="end" font-size="{FONT_PX}" '
            f'fill="#0b0c0c">{escape(level.label)}</text>'
        )
    if points:
        start, end = axis_span(points, now)
        span_s = max((end - start).total_seconds(), 1.0)

        def x(at: datetime) -> float:
            return LEFT + PLOT_W * (at - start).total_seconds() / span_s

        first_at, first_level = points[0]
        if before is not None and before in Level.__members__ and x(first_at) > LEFT:
            parts.append(
                f'<path d="M{LEFT},{y(Level[before]):.1f}H{x(first_at):.1f}" fill="none" stroke="#505a5f" '
                'stroke-width="2" stroke-dasharray="6 4"/>'
            )
        path = [f"M{x(first_at):.1f},{y(Level[first_level]):.1f}"]
        path += [f"H{x(at):.1f}V{y(Level[name]):.1f}" for at, name in points[1:]]
        path.append(f"H{x(end):.1f}")
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="#0b0c0c" stroke-width="3"/>')
        for at, name in points:
            parts.append(f'<circle cx="{x(at):.1f}" cy="{y(Level[name]):.1f}" r="4" fill="#0b0c0c"/>')
        for tick in ticks(start, end):
            parts.append(
                f'<line x1="{tick.x:.1f}" y1="{TOP + PLOT_H}" x2="{tick.x:.1f}" y2="{TOP + PLOT_H + 5}" '
                'stroke="#0b0c0c" stroke-width="1"/>'
            )
            parts.append(
                f'<text class="board-chart__tick" x="{tick.x:.1f}" y="{HEIGHT - 12}" text-anchor="middle" '
                f'font-size="{FONT_PX}" fill="#0b0c0c">{escape(tick.label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
