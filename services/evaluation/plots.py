"""The report's pictures (matplotlib, Agg backend: no display needed)."""

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from schemas.risk import Level
from services.evaluation.metrics import Assessment, Summary, daily_levels

if TYPE_CHECKING:
    from services.evaluation.scenarios import ScenarioRun

COLOURS = {Level.none: "#d9d9d9", Level.minor: "#fdd49e", Level.moderate: "#fc8d59", Level.major: "#b30000"}


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_time_to_detect(policy: Assessment, baseline: Assessment, path: Path) -> None:
    """Share of planted declines alerted at Moderate+ by each day after their start."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, assessment, style in (("policy", policy, "-"), ("baseline", baseline, "--")):
        # Those already at Moderate+ when they started were alerted about something else.
        declines = [d for d in assessment.detections if d.expected >= Level.moderate and not d.started_elevated]
        days = sorted(d.days_to_detect for d in declines if d.days_to_detect is not None)
        if not declines:
            continue
        xs = [0.0, *days]
        ys = [0.0, *[(i + 1) / len(declines) for i in range(len(days))]]
        ax.step(xs, ys, style, where="post", label=f"{name} ({len(days)} of {len(declines)})")
    ax.set_xlabel("days from the start of a decline")
    ax.set_ylabel("share of declines alerted at Moderate+")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Time to detect")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_recall_precision(policy: Summary, baseline: Summary, path: Path) -> None:
    plt = _pyplot()
    kinds = [k.kind for k in policy.kinds if k.kind != "ordinary"] + ["overall"]
    p = {k.kind: k for k in [*policy.kinds, policy.overall]}
    b = {k.kind: k for k in [*baseline.kinds, baseline.overall]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    width = 0.38
    xs = range(len(kinds))
    for ax, measure in zip(axes, ("recall", "precision"), strict=True):
        for offset, name, figures in ((-width / 2, "policy", p), (width / 2, "baseline", b)):
            values = [getattr(figures[k], measure) if k in figures else None for k in kinds]
            ax.bar([x + offset for x in xs], [v or 0.0 for v in values], width, label=name)
        ax.set_xticks(list(xs), kinds, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(f"{measure} at Moderate+")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_levels(runs: "Sequence[ScenarioRun]", path: Path, title: str) -> None:
    """Stacked share of every location at each level, day by day (policy and baseline)."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    days = min(r.scenario.days for r in runs)
    for ax, which in zip(axes, ("policy", "baseline"), strict=True):
        totals = [dict.fromkeys(Level, 0.0) for _ in range(days)]
        weight = 0
        for run in runs:
            subjects = sorted(run.locations)
            shares = daily_levels(getattr(run, which), subjects, run.start, days)
            for day, share in enumerate(shares):
                for level, value in share.items():
                    totals[day][level] += value * len(subjects)
            weight += len(subjects)
        series = [[t[level] / weight for t in totals] for level in Level]
        ax.stackplot(
            range(1, days + 1), series, labels=[lv.label for lv in Level], colors=[COLOURS[lv] for lv in Level]
        )
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{which}: share")
        ax.margins(x=0)
    axes[0].legend(loc="lower left", ncol=4, fontsize="small")
    axes[0].set_title(title)
    axes[1].set_xlabel("day of the run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
