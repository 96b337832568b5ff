"""Whether a ramp step's rate was sustainable (the definition is in bench/pipeline.py)."""

import math
from dataclasses import dataclass

from bench.alerts import pct
from bench.open_loop import Sent
from bench.pipeline_samples import Sample


def slope(points: list[tuple[float, float]]) -> float:
    points = [(x, y) for x, y in points if not math.isnan(y)]
    if len(points) < 3:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def rate_of(samples: list[Sample], attr: str) -> float:
    if len(samples) < 2 or samples[-1].at == samples[0].at:
        return 0.0
    first, last = getattr(samples[0], attr), getattr(samples[-1], attr)
    return max(0.0, (last - first) / (samples[-1].at - samples[0].at)) if not math.isnan(first + last) else 0.0


@dataclass
class Verdict:
    rate: float
    ok: bool
    answered: int
    due: int
    failures: int
    p50_ms: float
    p99_ms: float
    queues: dict[str, tuple[float, float, float]]  # name -> (end depth, slope/s, bound)
    why: list[str]

    def line(self) -> str:
        queues = ", ".join(f"{k} {d:.0f} ({s:+.1f}/s)" for k, (d, s, _) in self.queues.items())
        return (
            f"{self.rate:7.1f} ev/s: {'sustainable' if self.ok else 'NOT sustainable'}; "
            f"answered {self.answered}/{self.due}, {self.failures} failed; ingest p50 {self.p50_ms:.0f} ms, "
            f"p99 {self.p99_ms:.0f} ms; queues at end {queues}" + (f" -- {'; '.join(self.why)}" if self.why else "")
        )


def judge(rate: float, sent: list[Sent], samples: list[Sample], start: float, end: float) -> Verdict:
    half = start + (end - start) / 2
    second = [s for s in sent if s.scheduled >= half]
    answered = [s for s in second if s.done and s.done <= end + 5]
    failures = sum(1 for s in second if s.done and s.status in (0, 503))
    latencies = [(s.done - s.scheduled) * 1000 for s in second if s.done]
    window = [s for s in samples if half <= s.at <= end + 0.5]
    why: list[str] = []
    if failures:
        why.append(f"{failures} requests failed (503 or no answer)")
    due = len(second)
    if due == 0 or len(answered) < 0.97 * rate * (end - half):
        why.append(f"only {len(answered)} of {rate * (end - half):.0f} due requests answered in time")
    p99 = pct(latencies, 99)
    if not latencies or p99 > 1000:
        why.append(f"ingest p99 {p99:.0f} ms > 1 s")
    inputs = {
        "scorer lag": ("scorer_lag", rate),
        "alerts lag": ("alerts_lag", rate_of(window, "changes")),
        "outbox": ("outbox", rate_of(window, "webhooks")),
    }
    queues = {}
    for name, (attr, input_rate) in inputs.items():
        tail = [getattr(s, attr) for s in window[-3:]]
        depth = sum(tail) / len(tail) if tail else math.nan
        grow = slope([(s.at, getattr(s, attr)) for s in window])
        bound = max(20.0, 2 * input_rate)
        queues[name] = (depth, grow, bound)
        if math.isnan(depth) or depth > bound:
            why.append(f"{name} {depth:.0f} > {bound:.0f}")
        if grow > max(0.5, 0.05 * input_rate):
            why.append(f"{name} grows {grow:.1f}/s")
    return Verdict(rate, not why, len(answered), due, failures, pct(latencies, 50), p99, queues, why)
