"""The report's pictures (matplotlib, Agg backend: no display needed)."""

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from schemas.risk import Level
from services.evaluation.metrics import daily_levels

if TYPE_CHECKING:
    from services.evaluation.results import VariantResult
    from services.evaluation.scenarios import ScenarioRun

COLOURS = {Level.none: "#d9d9d9", Level.minor: "#fdd49e", Level.moderate: "#fc8d59", Level.major: "#b30000"}


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARKERS = {Level.minor: ("o", "Minor+"), Level.moderate: ("D", "Moderate+")}
DETECTOR_STYLE = {"count": ("#1f77b4", "count rule"), "own": ("#2ca02c", "own history")}


def plot_frontiers(variants: "Sequence[VariantResult]", path: Path, days: bool = False) -> None:
    """Per variant (rows) and level (columns): each baseline's settings (faint), its
    frontier (line) and the policy's point. With `days`, median days to detect against
    precision along the frontiers instead of recall."""
    plt = _pyplot()
    rows = len(variants)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.2 * rows), squeeze=False, sharex=True)
    for row, variant in enumerate(variants):
        for col, level in enumerate((Level.minor, Level.moderate)):
            ax = axes[row][col]
            result = variant.levels[level]
            for detector, (colour, name) in DETECTOR_STYLE.items():
                if not days:
                    every = result.points[detector]
                    ax.scatter([p.precision for p in every], [p.recall for p in every], s=8, color=colour, alpha=0.25)
                front = result.frontier[detector]
                ys = [p.median_days if days else p.recall for p in front]
                ax.plot([p.precision for p in front], ys, "-", marker=".", color=colour, label=name)
            policy = result.policy
            y = policy.median_days if days else policy.recall270
            if policy.precision is not None and y is not None:
                marker, label = MARKERS[level]
                ax.scatter(
                    [policy.precision], [y], s=70, marker=marker, color="#d62728", zorder=5, label=f"policy {label}"
                )
            ax.set_xlim(0, 1)
            if not days:
                ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.set_title(f"{variant.name}: {level.label}+", fontsize="medium")
            if col == 0:
                ax.set_ylabel("median days to detect" if days else "recall within 270 days")
            if row == rows - 1:
                ax.set_xlabel("precision")
    axes[0][0].legend(fontsize="small", loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_levels(runs: "Sequence[ScenarioRun]", path: Path, title: str) -> None:
    """Stacked share of every location at each level under the policy, day by day."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    days = min(r.scenario.days for r in runs)
    totals = [dict.fromkeys(Level, 0.0) for _ in range(days)]
    weight = 0
    for run in runs:
        subjects = sorted(run.locations)
        for day, share in enumerate(daily_levels(run.policy, subjects, run.start, days)):
            for level, value in share.items():
                totals[day][level] += value * len(subjects)
        weight += len(subjects)
    series = [[t[level] / weight for t in totals] for level in Level]
    ax.stackplot(range(1, days + 1), series, labels=[lv.label for lv in Level], colors=[COLOURS[lv] for lv in Level])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of locations")
    ax.margins(x=0)
    ax.legend(loc="lower left", ncol=4, fontsize="small")
    ax.set_title(title)
    ax.set_xlabel("day of the run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
