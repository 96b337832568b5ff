"""End to end under a steady load: ingest -> scorer -> alerts -> webhook receiver, open loop.

Every part is the real process: `caresignal ingest` (one API key per simulated source),
`caresignal scorer` (its own app id and state directory), `caresignal alerts` (its own
SQLite database, a webhook contact for every authority, the shipped delivery timings),
and bench/alerts.py's raw ASGI webhook receiver in a process of its own. Each phase gets
fresh topics under its own prefix (CARESIGNAL_TOPIC_PREFIX) on the dev broker and deletes
them (and the scorer's internal topics) at the end.

Load: a simulated national world (`caresignal simulate`'s generator, 25,000 locations,
195 authorities, EventStream in arrival order, its duplicates kept) is sent one event per
POST /v1/events at a fixed rate by an open loop (bench/open_loop.py: requests leave at
their scheduled time over 32 keep-alive connections, whatever the answers). Each event
is re-timed to its scheduled send time (microseconds, unique, so that a level change's
`decided_at` names the event that caused it; a resent duplicate keeps its first time),
so the load is live; the mix of types, locations, sources, payloads and duplicates is the
simulator's, its reporting delays are not kept.

Measured:
- ingest HTTP latency: from the scheduled send time to the answer (so a request waiting
  for a free connection counts; coordinated omission is avoided);
- end to end, for every webhook of a level change an event caused: from the event's
  Kafka record timestamp (CreateTime, set by ingest's producer at `send()`, after the
  request was parsed and admitted: it leaves out ingest's parsing and uvicorn's queue,
  which the ingest latency above shows) to the webhook's arrival at the receiver (same
  host, same clock). The event is found by the change's `decided_at`, which for a change
  the event caused is the event's own time;
- every second: the scorer's and alerts' consumer lag and the alerts outbox depth (their
  /metrics), and the RSS of every process (/proc/<pid>/status).

Sustainable (the ramp): a rate is sustainable when, over a step of --step-seconds at that
rate, in the step's second half: (1) every request was answered and none with 503 or a
lost connection; (2) the generator kept to the rate (>= 97 % of the requests due were
answered by the step's end + 5 s); (3) ingest HTTP latency p99 <= 1 s; (4) each queue -
the scorer's event lag, alerts' risk-change lag, the alerts outbox - is bounded: the mean
of its last 3 samples <= max(20, 2 s x its input rate) and its least-squares slope <=
max(0.5, 5 % of its input rate) per second (inputs: the event rate, the scorer's level
change rate, the webhook rate). The ramp multiplies the rate by 1.5 from --start-rate
until a step fails, lets the pipeline drain, tries the midpoint once, and reports the
highest sustainable rate. Then, with fresh topics and processes for each, --minutes at
50 % and at 80 % of it.

Run on demand: `make bench-pipeline` (`--minutes 2` for a short run, `--max-rate N` to
skip the ramp).
"""

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.alerts import Receiver, new_secret, production_delivery_settings  # noqa: E402
from bench.open_loop import OpenLoop, Sent, post_request  # noqa: E402
from bench.pipeline_readback import event_times, read_changes  # noqa: E402
from bench.pipeline_report import cpu_use, end_to_end, histogram_summary, ingest_lines, memory_growth, ms, over_time  # noqa: E402
from bench.pipeline_samples import Sample, Sampler, Urls  # noqa: E402
from bench.pipeline_steps import Verdict, judge  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from services.apikeys import hash_key  # noqa: E402
from services.broker.local import LocalBroker  # noqa: E402
from services.broker.settings import KafkaSettings  # noqa: E402
from services.broker.topics import create_topics  # noqa: E402
from services.simulator.config import SimulationConfig  # noqa: E402
from services.simulator.generator import EventStream, all_sources  # noqa: E402
from services.simulator.population import Population  # noqa: E402
from services.simulator.run import build_world  # noqa: E402
from services.simulator.sinks import KafkaSink  # noqa: E402
from tests.ingest_process import IngestProcess  # noqa: E402
from tests.service_process import AlertsProcess, ScorerProcess, wait_caught_up  # noqa: E402

CONNECTIONS = 32
WARMUP_S = 30.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


# --- the load -----------------------------------------------------------------------


class Load:
    """The simulated world's events, re-timed to their send time, as ingest requests."""

    def __init__(self, seed: int, host: str) -> None:
        config = SimulationConfig(seed=seed, scale="national", days=365)
        self.population, plan = build_world(config)
        self.sources = all_sources(self.population)
        self.keys = {source: f"cs_bench_{uuid.uuid4().hex}" for source in self.sources}
        self._events: Iterator[dict[str, Any]] = iter(EventStream(config, self.population, plan))
        self._host = host
        self._times: dict[tuple[str, str], int] = {}
        self.subjects: set[str] = set()
        self._last_us = 0

    def key_file(self) -> str:
        entries = []
        for n, (source, types) in enumerate(sorted(self.sources.items())):
            names = ", ".join(f'"{t}"' for t in sorted(types))
            entries.append(
                f'[[key]]\nname = "bench-{n}"\nsha256 = "{hash_key(self.keys[source])}"\n'
                f'source = "{source}"\nevent_types = [{names}]\n'
            )
        return "\n".join(entries)

    def render(self, due: float) -> bytes | None:
        event = next(self._events, None)
        if event is None:
            return None
        ident = (event["source"], event["id"])
        self.subjects.add(event["subject"])
        at_us = self._times.get(ident)
        if at_us is None:  # a resend keeps the time it was first sent with
            at_us = self._last_us = max(int(due * 1_000_000), self._last_us + 1)
            self._times[ident] = at_us
        at = (EPOCH + at_us * US).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = json.dumps({**event, "time": at}, separators=(",", ":")).encode()
        return post_request(self._host, "/v1/events", self.keys[event["source"]], body)


# --- the pipeline -------------------------------------------------------------------


def contacts(population: Population, receiver_url: str) -> str:
    doc = {
        "authorities": {
            a.ons_code: {
                "webhooks": [
                    {
                        "id": f"hook-{a.ons_code.lower()}",
                        "url": f"{receiver_url}/hooks/{a.ons_code}",
                        "secret": new_secret(),
                        "min_level": "minor",
                    }
                ]
            }
            for a in population.authorities
        }
    }
    return json.dumps(doc)  # JSON is YAML


def start_receiver(port: int) -> Receiver:
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "alerts.py"), "--serve-receiver", str(port)])
    receiver = Receiver(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            receiver.count()
            return receiver
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the webhook receiver did not come up")


@dataclass
class Pipeline:
    kafka: KafkaSettings
    load: Load
    work: Path
    phase: int
    prefix: str = field(default_factory=lambda: f"benchpl{uuid.uuid4().hex[:6]}")
    ingest: IngestProcess | None = None
    scorer: ScorerProcess | None = None
    alerts: AlertsProcess | None = None
    receiver: Receiver | None = None

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.prefix)

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-scorer"

    def start(self) -> None:
        bootstrap = self.kafka.bootstrap_servers
        create_topics(bootstrap, self.topics)
        sink = KafkaSink(bootstrap, self.topics)
        try:
            sink.directory(self.load.population)
        finally:
            sink.close()
        # Ports of this bench's own range (6300-6399, 8300-8399), one set per phase.
        http, other = 8300 + 10 * self.phase, 6300 + 10 * self.phase
        self.receiver = start_receiver(other + 1)
        for name in ("ingest", "scorer", "alerts"):
            (self.work / name).mkdir(parents=True)
        self.scorer = ScorerProcess(
            topic_prefix=self.prefix, workdir=self.work / "scorer", port=other, app_id=self.app_id
        )
        self.alerts = AlertsProcess(
            topic_prefix=self.prefix,
            workdir=self.work / "alerts",
            port=http + 1,
            smtp_port=other + 2,  # closed; no email contact points
            group=f"{self.prefix}-alerts",
            settings=production_delivery_settings(),
        )
        self.alerts.contacts_file.write_text(contacts(self.load.population, self.receiver.url))
        self.alerts.keys_file.write_text(
            f'[[key]]\nname = "bench"\nsha256 = "{hash_key("cs_bench_" + uuid.uuid4().hex)}"\noperator = true\n'
        )
        self.ingest = IngestProcess(topic_prefix=self.prefix, workdir=self.work / "ingest", port=http)
        self.ingest.keys_file.write_text(self.load.key_file())
        self.scorer.start()
        self.alerts.start()
        self.ingest.start()
        # The scorer reads the whole directory (25,000 locations, a table write each) when
        # it starts: measured on its own, so that the load measures the steady state
        # rather than events queued behind that, and judged with their locations known.
        started = time.monotonic()
        wait_caught_up(bootstrap, self.app_id, self.topics.locations, timeout_s=600)
        records = len(self.load.population.sites)
        print(f"directory: the scorer read {records:,} records in {time.monotonic() - started:.1f} s", flush=True)

    def urls(self) -> Urls:
        assert self.scorer is not None and self.alerts is not None and self.receiver is not None
        return Urls(self.scorer.url, self.alerts.url, self.receiver.url)

    def pids(self) -> dict[str, int]:
        out = {}
        for name, service in (("ingest", self.ingest), ("scorer", self.scorer), ("alerts", self.alerts)):
            if service is not None and service.process is not None:
                out[name] = service.process.pid
        if self.receiver is not None:
            out["receiver"] = self.receiver.process.pid
        return out

    def stop(self) -> None:
        for service in (self.ingest, self.alerts, self.scorer):
            if service is not None:
                service.stop()
        if self.receiver is not None:
            self.receiver.stop()
        delete_topics(self.kafka.bootstrap_servers, (self.prefix, self.app_id))


def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="caresignal-bench-pipeline")
    try:
        doomed = [t for t in admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


# --- a phase ------------------------------------------------------------------------


async def ramp(pipeline: Pipeline, start_rate: float, step_s: float) -> tuple[float, list[Verdict]]:
    loop = OpenLoop("127.0.0.1", pipeline.ingest.port if pipeline.ingest else 0, CONNECTIONS)
    sampler = Sampler(pipeline.urls(), pipeline.pids, lambda: len(pipeline.load.subjects))
    sampling = asyncio.create_task(sampler.run())
    verdicts: list[Verdict] = []
    good, bad = 0.0, math.inf
    rate = start_rate
    try:
        while True:
            started = time.time()
            sent = await loop.run(rate, step_s, pipeline.load.render)
            ended = time.time()
            await asyncio.sleep(1.0)
            verdict = judge(rate, sent, sampler.samples, started, ended)
            verdicts.append(verdict)
            print("  " + verdict.line(), flush=True)
            if verdict.ok:
                good = max(good, rate)
            else:
                bad = min(bad, rate)
            if bad is math.inf:
                rate *= 1.5
                continue
            if len([v for v in verdicts if not v.ok]) > 1 or bad / good < 1.2 or good == 0:
                break
            await loop.settle()
            drained = await sampler.drain(180)
            print(f"  (drained in {drained:.0f} s)", flush=True)
            rate = round((good + bad) / 2, 1)
    finally:
        sampler.stop()
        await sampling
        await loop.settle(10)
    return good, verdicts


@dataclass
class RunResult:
    rate: float
    seconds: float
    sent: list[Sent]
    samples: list[Sample]
    webhooks: list[tuple[float, str, str, str]]
    started: float
    ended: float
    drain_s: float


async def steady(pipeline: Pipeline, rate: float, seconds: float) -> RunResult:
    loop = OpenLoop("127.0.0.1", pipeline.ingest.port if pipeline.ingest else 0, CONNECTIONS)
    sampler = Sampler(pipeline.urls(), pipeline.pids, lambda: len(pipeline.load.subjects))
    sampling = asyncio.create_task(sampler.run())
    started = time.time()
    try:
        sent = await loop.run(rate, seconds, pipeline.load.render)
        ended = time.time()
        await loop.settle()
    finally:
        sampler.stop()
        await sampling
    drain_s = await sampler.drain(300)
    return RunResult(rate, seconds, sent, sampler.samples, sampler.webhooks, started, ended, drain_s)


# --- main ---------------------------------------------------------------------------

PROCESSES = ["ingest", "scorer", "alerts", "receiver"]


def commit() -> str:
    """HEAD, and whether the services the processes run had uncommitted edits (a shared tree)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--short", "services"], cwd=ROOT, capture_output=True, text=True)
    edits = " + uncommitted edits in services/" if dirty.stdout.strip() else ""
    return (head.stdout.strip() or "unknown") + edits


def own_histograms(pipeline: Pipeline) -> list[str]:
    """What the services measure themselves, over the whole run (warm-up included)."""
    assert pipeline.ingest is not None and pipeline.scorer is not None and pipeline.alerts is not None
    wanted = (
        ("ingest: waiting for Kafka's acknowledgement", pipeline.ingest.url, "caresignal_ingest_produce_seconds"),
        ("scorer: one event, state load to state write", pipeline.scorer.url, "caresignal_scoring_processing_seconds"),
        (
            "scorer: every event, record produced -> scored",
            pipeline.scorer.url,
            "caresignal_scoring_record_latency_seconds",
        ),
        ("alerts: change published -> delivered", pipeline.alerts.url, "caresignal_alerts_delivery_latency_seconds"),
    )
    lines = []
    for what, url, name in wanted:
        try:
            text = httpx.get(f"{url}/metrics", timeout=10).text
        except httpx.HTTPError as exc:
            text = ""
            what += f" (scrape failed: {exc})"
        lines.append(f"| {what} (the service's own histogram) | {histogram_summary(text, name)} |")
    return lines


def report(pipeline: Pipeline, run: RunResult, load_share: float, code: str) -> list[str]:
    bootstrap = pipeline.kafka.bootstrap_servers
    changes = read_changes(bootstrap, pipeline.topics)
    created = event_times(bootstrap, pipeline.topics)
    window = (run.started + WARMUP_S, run.ended)
    e2e = end_to_end(run.webhooks, changes.by_alert, created, window)
    lines = [
        f"### {load_share:.0%} load: {run.rate:g} events/s for {run.seconds / 60:g} min (code: {code}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "| measure | figure |",
        "|---|---|",
        f"| events sent | {len(run.sent):,} ({len(run.sent) / (run.ended - run.started):.1f}/s achieved) |",
        *ingest_lines(run.sent, window),
        f"| level changes published | {', '.join(f'{k} {v:,}' for k, v in sorted(changes.count.items()))} |",
        f"| webhooks received | {e2e.webhooks:,} ({e2e.matched:,} for changes caused by an event after warm-up; "
        f"{e2e.unmatched:,} for changes no event caused directly) |",
        f"| **end to end p50 / p99: event record (CreateTime at ingest) -> webhook received** | "
        f"**{ms(e2e.latency_ms)} ms** (max {max(e2e.latency_ms, default=math.nan):,.0f}) |",
        f"| of which scorer: event record -> level change record, p50 / p99 | {ms(e2e.scorer_ms)} ms |",
        f"| of which alerts: level change record -> webhook received, p50 / p99 | {ms(e2e.alerts_ms)} ms |",
        f"| queues drained after the load stopped | in {run.drain_s:.0f} s |",
        *own_histograms(pipeline),
        "",
        *over_time(run.samples, run.started, PROCESSES),
        "",
        memory_growth(run.samples, run.started, run.ended, PROCESSES),
        "",
        cpu_use(run.samples, run.started + WARMUP_S, run.ended),
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each steady run")
    parser.add_argument("--max-rate", type=float, help="skip the ramp: the maximum sustainable rate (events/s)")
    parser.add_argument("--start-rate", type=float, default=20.0, help="the ramp's first rate")
    parser.add_argument("--step-seconds", type=float, default=45.0, help="the length of each ramp step")
    parser.add_argument("--loads", default="0.5,0.8", help="shares of the maximum to run steadily at")
    parser.add_argument("--seed", type=int, default=7, help="the simulated world's seed")
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the work directory (every process's log) after the run"
    )
    args = parser.parse_args()

    kafka = KafkaSettings()
    if not kafka.external:
        LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap).start()
    work = Path(tempfile.mkdtemp(prefix="caresignal-bench-pipeline-"))
    print(f"code: {commit()}, {os.cpu_count()} cores, work directory {work}", flush=True)
    out: list[str] = []
    try:
        max_rate = args.max_rate
        if max_rate is None:
            print(f"ramp: steps of {args.step_seconds:g} s from {args.start_rate:g} events/s", flush=True)
            pipeline = Pipeline(kafka, Load(args.seed, "127.0.0.1"), work / "ramp", phase=0)
            try:
                pipeline.start()
                max_rate, verdicts = asyncio.run(ramp(pipeline, args.start_rate, args.step_seconds))
            finally:
                pipeline.stop()
            out += [
                "### Ramp",
                "",
                *(f"- {v.line()}" for v in verdicts),
                "",
                f"Maximum sustainable: **{max_rate:g} events/s**",
                "",
            ]
            if max_rate <= 0:
                print("\n".join(out))
                return 1
        for phase, share in enumerate(float(x) for x in args.loads.split(",")):
            rate = round(max_rate * share, 1)
            print(f"steady: {rate:g} events/s ({share:.0%} of {max_rate:g}) for {args.minutes:g} min", flush=True)
            pipeline = Pipeline(kafka, Load(args.seed, "127.0.0.1"), work / f"load{phase}", phase=phase + 1)
            try:
                code = commit()
                pipeline.start()
                run = asyncio.run(steady(pipeline, rate, args.minutes * 60))
                lines = report(pipeline, run, share, code)
            finally:
                pipeline.stop()
            print("\n".join(lines), flush=True)
            out += [*lines, ""]
    finally:
        if args.keep_work:
            print(f"work directory kept: {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + "\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
