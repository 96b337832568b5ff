"""What bench/pipeline.py prints for a steady run: latencies, queues and memory over time."""

import math
import os
from collections import Counter
from dataclasses import dataclass

from bench.alerts import pct
from bench.open_loop import Sent
from bench.pipeline_samples import Sample


@dataclass
class EndToEnd:
    webhooks: int  # distinct webhooks received for changes of this run
    matched: int  # of those, for a change an event of the measured window caused
    unmatched: int  # changes no event's time names (ticks, organisation roll-ups of unsent events)
    latency_ms: list[float]  # event record CreateTime -> webhook received
    scorer_ms: list[float]  # event record -> level change record (the scorer)
    alerts_ms: list[float]  # level change record -> webhook received (alerts)


def end_to_end(
    webhooks: list[tuple[float, str, str, str]],
    changes: dict[str, tuple[int, int, str]],
    created: dict[int, int],
    window: tuple[float, float],
) -> EndToEnd:
    first: dict[str, tuple[float, str]] = {}
    for arrived, _, wid, alert_id in sorted(webhooks):
        first.setdefault(wid, (arrived, alert_id))
    latency: list[float] = []
    scorer: list[float] = []
    alerts: list[float] = []
    unmatched = 0
    for arrived, alert_id in first.values():
        change = changes.get(alert_id)
        event_ms = created.get(change[0]) if change else None
        if change is None or event_ms is None:
            unmatched += 1
            continue
        if not window[0] * 1000 <= event_ms <= window[1] * 1000:
            continue
        latency.append(arrived * 1000 - event_ms)
        scorer.append(change[1] - event_ms)
        alerts.append(arrived * 1000 - change[1])
    return EndToEnd(len(first), len(latency), unmatched, latency, scorer, alerts)


def ms(values: list[float]) -> str:
    return f"{pct(values, 50):,.0f} / {pct(values, 99):,.0f}"


def ingest_lines(sent: list[Sent], window: tuple[float, float]) -> list[str]:
    measured = [s for s in sent if window[0] <= s.scheduled <= window[1]]
    statuses = Counter(s.status for s in measured)
    ok = [s for s in measured if s.status == 202]
    scheduled = [(s.done - s.scheduled) * 1000 for s in ok]
    on_wire = [(s.done - s.started) * 1000 for s in ok]
    return [
        f"| ingest answers (after warm-up) | {len(measured):,} requests: "
        + ", ".join(f"{code or 'no answer'} x {n:,}" for code, n in sorted(statuses.items()))
        + " |",
        f"| ingest HTTP latency p50 / p99, scheduled send -> answer | {ms(scheduled)} ms |",
        f"| ingest HTTP latency p50 / p99, on the wire (request written -> answer) | {ms(on_wire)} ms |",
    ]


def over_time(samples: list[Sample], started: float, names: list[str]) -> list[str]:
    """Per minute: the highest queue depths, each process's RSS at the minute's end, the
    locations sent to so far, and how busy the whole machine was (other work included)."""
    lines = [
        "| minute | scorer lag (max) | alerts lag (max) | outbox (max) | "
        + " | ".join(f"RSS {n} MB" for n in names)
        + " | locations so far | machine CPU busy (cores) |",
        "|---" * (6 + len(names)) + "|",
    ]
    cores = os.cpu_count() or 1
    minute = 0
    while True:
        inside = [s for s in samples if started + 60 * minute <= s.at < started + 60 * (minute + 1)]
        if not inside:
            break
        depth = [
            max((getattr(s, a) for s in inside if not math.isnan(getattr(s, a))), default=math.nan)
            for a in ("scorer_lag", "alerts_lag", "outbox")
        ]
        rss = [inside[-1].rss_mb.get(n, math.nan) for n in names]
        busy = inside[-1].machine[0] - inside[0].machine[0]
        total = inside[-1].machine[1] - inside[0].machine[1]
        lines.append(
            f"| {minute + 1} | "
            + " | ".join(f"{d:,.0f}" for d in depth)
            + " | "
            + " | ".join(f"{r:,.0f}" for r in rss)
            + f" | {inside[-1].locations:,} | {cores * busy / max(1, total):.2f} |"
        )
        minute += 1
    return lines


def memory_growth(samples: list[Sample], start: float, end: float, names: list[str]) -> str:
    """RSS one minute in against the end of the load, per process."""
    early = [s for s in samples if s.at >= start + 60]
    late = [s for s in samples if s.at <= end]
    if not early or not late:
        return "memory: run too short to compare"
    parts = []
    for n in names:
        a, b = early[0].rss_mb.get(n, math.nan), late[-1].rss_mb.get(n, math.nan)
        parts.append(f"{n} {a:,.0f} -> {b:,.0f} MB ({b - a:+,.0f})")
    return "RSS from minute 1 to the end of the load: " + "; ".join(parts)


def cpu_use(samples: list[Sample], start: float, end: float) -> str:
    """Cores used by each process while the load ran, and by the whole machine."""
    inside = [s for s in samples if start <= s.at <= end]
    if len(inside) < 2:
        return "CPU: run too short"
    a, b = inside[0], inside[-1]
    seconds = b.at - a.at
    parts = [f"{n} {(b.cpu_s[n] - a.cpu_s[n]) / seconds:.2f}" for n in b.cpu_s if n in a.cpu_s]
    busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
    cores = os.cpu_count() or 1
    return (
        f"CPU while the load ran, in cores: {', '.join(parts)}; the whole machine "
        f"{cores * busy / max(1, total):.2f} of {cores} (the rest: the Kafka broker and other work on the machine)"
    )


def histogram_summary(text: str, name: str) -> str:
    """A service's own histogram over the whole run (every label summed): mean, and the
    bucket bounds holding p50 and p99 (Prometheus-style, no interpolation)."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            upper = math.inf if le == "+Inf" else float(le)
            buckets[upper] = buckets.get(upper, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_sum"):
            total += float(line.rsplit(" ", 1)[1])
    if not count:
        return "no samples"

    def bound(q: float) -> str:
        le = next(b for b, c in sorted(buckets.items()) if c >= q * count)
        return "> last bucket" if math.isinf(le) else f"<= {le * 1000:g} ms"

    return f"mean {total / count * 1000:.1f} ms, p50 {bound(0.5)}, p99 {bound(0.99)} ({count:,.0f} samples)"
