"""A subject's level over time as a server-rendered SVG step chart. Pure.

The chart is decoration for sighted readers: the page gives the same points as a table,
and the SVG carries a title and a description for assistive technology.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from schemas.risk import Level

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 90, 16, 12, 36
# GOV.UK palette; the line is black so it never relies on colour alone.
BANDS = {Level.none: "#f3f2f1", Level.minor: "#fff7bf", Level.moderate: "#fcd6c3", Level.major: "#f6d7d2"}


def level_chart(points: Sequence[tuple[datetime, str]], now: datetime, description: str) -> str:
    """SVG markup for the given (time, level) points, each level held until the next."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    levels = list(Level)
    band_h = plot_h / len(levels)

    def y(level: Level) -> float:
        return TOP + plot_h - (int(level) + 0.5) * band_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="board-chart" role="img" '
        'aria-labelledby="chart-title chart-desc" focusable="false">',
        '<title id="chart-title">Risk level over time</title>',
        f'<desc id="chart-desc">{escape(description)}</desc>',
    ]
    for level in levels:
        top = TOP + plot_h - (int(level) + 1) * band_h
        parts.append(f'<rect x="{LEFT}" y="{top:.1f}" width="{plot_w}" height="{band_h:.1f}" fill="{BANDS[level]}"/>')
        parts.append(
            f'<text x="{LEFT - 8}" y="{y(level) + 5:.1f}" text-anchor="end" font-size="14" '
            f'fill="#0b0c0c">{escape(level.label)}</text>'
        )
    if points:
        start = min(points[0][0], now)
        span = max((now - start).total_seconds(), 1.0)

        def x(at: datetime) -> float:
            return LEFT + plot_w * (at - start).total_seconds() / span

        path = []
        for i, (at, name) in enumerate(points):
            level = Level[name]
            if i == 0:
                path.append(f"M{x(at):.1f},{y(level):.1f}")
            else:
                path.append(f"H{x(at):.1f}V{y(level):.1f}")
        path.append(f"H{x(now):.1f}")
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="#0b0c0c" stroke-width="3"/>')
        for at, name in points:
            parts.append(f'<circle cx="{x(at):.1f}" cy="{y(Level[name]):.1f}" r="4" fill="#0b0c0c"/>')
        for at, anchor in ((start, "start"), (now, "end")):
            parts.append(
                f'<text x="{x(at):.1f}" y="{HEIGHT - 12}" text-anchor="{anchor}" font-size="14" '
                f'fill="#0b0c0c">{at.astimezone(UTC).strftime("%-d %b %Y")}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
