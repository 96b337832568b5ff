"""Scoring speed on the simulator's realistic traffic, each figure next to a baseline
measured in the same run.

- engine: a simulated region's year (the simulator's mix: ~300 events per location)
  through the pure replay of the scorer (`services/evaluation/replay.py`: the model,
  peer sums, tick planning, time signals), with the engine and with the previous model
  (`services/scoring/oracle.py`) on the same events; CPU seconds of the replay alone.
- history: microseconds per event for a location already holding 1, 400 and 2,000
  retained events (engine and previous model).
- state: bytes per location as stored after the year (engine: binary; previous: JSON).
- worker: the real `caresignal scorer` process (Faust, RocksDB table, changelog, level
  changes out) consuming the same year from Kafka, next to a raw aiokafka consumer loop
  over the same topic: wall time, and the scorer process's CPU time (what the engine's
  figure is: on a loaded machine the wall rate is lowered by the CPU share the process
  gets); the level changes it published (count and a digest of their JSON: `--changes`
  writes them out; with `--partition` one partition's events only, which two runs of
  the same day decide identically); then changelog recovery with the local store deleted.
- national: the simulator's national population (25,000 locations) for `--national-days`
  through the replay split over `--workers` processes by partition, as `caresignal
  evaluate --national` runs it; wall time, events/s, peak memory, and the time a year
  would take at that rate.

Run on demand: `make bench-scoring` (all parts), or `--parts engine,history,state`.
"""

import argparse
import asyncio
import dataclasses
import gc
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.directory import Location, ServiceType  # noqa: E402
from schemas.events import Event, EventParser  # noqa: E402
from schemas.examples import example_event  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from services.broker.local import LocalBroker  # noqa: E402
from services.broker.settings import KafkaSettings  # noqa: E402
from services.broker.topics import create_topics  # noqa: E402
from services.evaluation.replay import Replay, ScoringModel  # noqa: E402
from services.evaluation.scenarios import Scenario, config_end, run_scenario  # noqa: E402
from services.scoring import model, oracle  # noqa: E402
from services.scoring.policy import DEFAULT_POLICY, Policy, load_policy  # noqa: E402
from services.scoring.routing import partition_of  # noqa: E402
from services.scoring.state_codec import encode_state  # noqa: E402
from services.simulator.config import SimulationConfig  # noqa: E402
from services.simulator.generator import EventStream  # noqa: E402
from services.simulator.run import build_world  # noqa: E402

PARTS = ("engine", "history", "state", "worker", "national")


def world(
    seed: int, locations: int, days: int, start: datetime | None = None
) -> tuple[dict[str, Location], list[Any], datetime]:
    config = SimulationConfig(seed=seed, locations=locations, days=days)
    if start is not None:
        config = dataclasses.replace(config, start=start.date())
    population, plan = build_world(config)
    events = list(EventStream(config, population, plan).run(None))
    return {s.location_id: s.location for s in population.sites}, events, datetime.fromisoformat(config_end(config))


def replay_rate(
    locations: dict[str, Location], parsed: Sequence[Event], end: datetime, policy: Policy
) -> tuple[float, Replay]:
    engine = Replay(locations, policy)
    gc.collect()
    started = time.process_time()
    for event in parsed:
        engine.event(event)
    engine.run_clock_until(end)
    return len(parsed) / (time.process_time() - started), engine


def part_engine(args: argparse.Namespace, policy: Policy, out: dict[str, Any]) -> None:
    locations, raw, end = world(args.seed, args.locations, args.days)
    parser = EventParser(future_tolerance=timedelta(days=3650))
    parsed = [parser.parse_obj(e) for e in raw]  # parsing is the same for both: left out of the time
    print(
        f"engine: a simulated region, seed {args.seed}, {len(locations)} locations, {args.days} days: {len(parsed):,} events"
    )
    rate, engine = replay_rate(locations, parsed, end, policy)
    print(
        f"  engine (replay of the scorer):      {rate:9,.0f} events/s (CPU), {engine.result.ticks:,} ticks, {len(engine.level_changes)} changes"
    )
    # The previous model on the very same calls (events, and ticks at the engine's times).
    reference = Replay(locations, policy, model=ScoringModel(oracle.assess, oracle.tick))
    calls: list[Any] = []
    planner = Replay(locations, policy)
    planner.calls = calls
    for event in parsed:
        planner.event(event)
    planner.run_clock_until(end)
    gc.collect()
    started = time.process_time()
    reference.follow(calls)
    old_rate = len(parsed) / (time.process_time() - started)
    same = [c.model_dump() for c in reference.level_changes] == [c.model_dump() for c in planner.level_changes]
    print(f"  previous model, same calls:         {old_rate:9,.0f} events/s (CPU); same level changes: {same}")
    print(f"  ratio: {rate / old_rate:.1f}x (target: >= 12,000 events/s on one core, issue 18)")
    out["engine"] = {
        "events": len(parsed),
        "engine_eps": rate,
        "oracle_eps": old_rate,
        "same": same,
        "ticks": engine.result.ticks,
    }
    out["_states"] = (engine.states, reference.states)


def _history(policy: Policy, retained: int, assess: Callable[..., Any], per: int) -> float:
    """µs per event for an agency holding `retained` events (a year's spread of the mix)."""
    parser = EventParser(future_tolerance=timedelta(days=3650))
    agency = Location(
        location_id="1-900000001",
        provider_id="1-900000000",
        service_type=ServiceType.home_care,
        capacity=400,
        host_authority="E10000030",
    )
    kinds = [
        "missed_visit",
        "complaint",
        "safeguarding_concern",
        "statutory_notification",
        "contract_monitoring",
        "health_use",
    ]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    span = timedelta(days=380) / max(retained, 1)
    state = None
    for i in range(retained):
        event = parser.parse_obj(
            example_event(
                kinds[i % len(kinds)], event_id=f"h-{i}", location_id=agency.location_id, time=start + span * i
            )
        )
        state = assess(state, agency, event, policy).state
    times = []
    for j in range(per):
        event = parser.parse_obj(
            example_event(
                kinds[j % len(kinds)],
                event_id=f"n-{j}",
                location_id=agency.location_id,
                time=start + span * retained + timedelta(minutes=90 * (j + 1)),
            )
        )
        started = time.perf_counter()
        state = assess(state, agency, event, policy).state
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def part_history(args: argparse.Namespace, policy: Policy, out: dict[str, Any]) -> None:
    print("history: µs per event (median) for a location already holding n retained events")
    rows = []
    for retained in (1, 400, 2000):
        new = _history(policy, retained, lambda s, loc, e, p: model.assess(s, loc, e, p, consume=True), 300)
        old = _history(policy, retained, oracle.assess, 30 if retained > 100 else 300)
        print(f"  {retained:5d} retained: engine {new:8.0f} µs   previous {old:8.0f} µs   ({old / new:.0f}x)")
        rows.append({"retained": retained, "engine_us": new, "oracle_us": old})
    out["history"] = rows


def part_state(args: argparse.Namespace, policy: Policy, out: dict[str, Any]) -> None:
    if "_states" not in out:
        part_engine(args, policy, out)
    engine_states, oracle_states = out.pop("_states")
    new = sorted(len(encode_state(s)) for s in engine_states.values())
    old = sorted(len(s.model_dump_json()) for s in oracle_states.values())

    def q(values: list[int], p: float) -> int:
        return values[min(len(values) - 1, int(p * len(values)))]

    print("state per location after the year, bytes as stored: mean / median / p90 / max")
    print(f"  engine (binary): {statistics.mean(new):8,.0f} / {q(new, 0.5):8,} / {q(new, 0.9):8,} / {new[-1]:8,}")
    print(
        f"  previous (JSON): {statistics.mean(old):8,.0f} / {q(old, 0.5):8,} / {q(old, 0.9):8,} / {old[-1]:8,}  (target <= 12 KiB)"
    )
    out["state"] = {
        "engine_mean": statistics.mean(new),
        "engine_p90": q(new, 0.9),
        "engine_max": new[-1],
        "oracle_mean": statistics.mean(old),
        "oracle_p90": q(old, 0.9),
    }


def produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


async def raw_loop(bootstrap: str, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                seen += len(records)
    finally:
        await consumer.stop()
    return expected / (time.perf_counter() - started)


def published(bootstrap: str, topic: str) -> list[str]:
    """Every record on the topic, as text, in (key, sequence) order: the worker's decisions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        values: list[bytes] = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
    finally:
        consumer.close()
    changes = [json.loads(v) for v in values]
    changes.sort(key=lambda c: (c.get("scope", ""), c.get("location_id") or c.get("provider_id") or "", c["sequence"]))
    return [json.dumps(c, sort_keys=True) for c in changes]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_sum(url: str, name: str) -> float:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 900) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError("the scorer exited")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the scorer did not become ready")


def part_worker(args: argparse.Namespace, policy: Policy, out: dict[str, Any]) -> None:
    kafka = KafkaSettings()
    if not kafka.external:
        LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap).start()
    # Recent, so that nothing is older than the retention against the wall clock.
    start = datetime.now(UTC) - timedelta(days=args.days + 1)
    locations, raw, _ = world(args.seed, args.locations, args.days, start)
    prefix = f"benchs{uuid.uuid4().hex[:6]}"
    topics = Topics.with_prefix(prefix)
    create_topics(kafka.bootstrap_servers, topics)
    directory = [(topics.locations, k.encode(), loc.model_dump_json().encode()) for k, loc in locations.items()]
    records = [(topics.events, e["subject"].encode(), json.dumps(e).encode()) for e in raw]
    if args.partition is not None:
        # One partition's events only: the worker then meets them in one fixed order, and
        # two runs decide the same (across partitions the order is the fetches', and the
        # peer priors an event reads depend on it).
        records = [r for r in records if partition_of(r[1]) == args.partition]
    print(f"worker: producing {len(records):,} events of {len(locations)} locations (a simulated year) ...")
    produce(kafka.bootstrap_servers, directory + records)
    raw_rate = asyncio.run(raw_loop(kafka.bootstrap_servers, topics.events, len(records)))
    work = Path(tempfile.mkdtemp(prefix="caresignal-bench-scoring-"))
    port = 6100 + os.getpid() % 500
    env = {
        **os.environ,
        "CARESIGNAL_TOPIC_PREFIX": prefix,
        "CARESIGNAL_SCORING_APP_ID": f"{prefix}-scorer",
        "CARESIGNAL_SCORING_WEB_PORT": str(port),
        "CARESIGNAL_SCORING_DATA_DIR": str(work / "data"),
        "CARESIGNAL_SCORING_LOG_LEVEL": "warn",
        "CARESIGNAL_SCORING_CLOCK_INTERVAL_S": "0",
    }
    url = f"http://127.0.0.1:{port}"
    log = (work / "scorer.log").open("wb")
    command = [sys.executable, "-m", "services.cli", "scorer"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, process)
        started, cpu_started = time.perf_counter(), cpu_seconds(process.pid)
        # Polled twice a second: each scrape costs the scorer a few milliseconds.
        while metric_sum(url, "caresignal_scoring_events_total") < len(records):
            if time.perf_counter() - started > 3600:
                raise RuntimeError("the scorer did not finish within an hour")
            time.sleep(0.5)
        rate = len(records) / (time.perf_counter() - started)
        cpu_rate = len(records) / (cpu_seconds(process.pid) - cpu_started)
        print(f"  raw aiokafka consumer loop:  {raw_rate:10,.0f} events/s")
        print(
            f"  scoring worker (one process): {rate:10,.0f} events/s ({rate / raw_rate:.1%} of the raw loop; target >= 5,000 events/s)"
        )
        print(f"  scoring worker, CPU time:     {cpu_rate:10,.0f} events/s (the process's CPU seconds, all threads)")
        if "engine" in out:
            engine_rate = out["engine"]["engine_eps"]
            print(
                f"  worker / pure engine (same run): {rate / engine_rate:.0%} wall, {cpu_rate / engine_rate:.0%} CPU (target >= 60 %)"
            )
        time.sleep(5)  # let the last changelog writes and offset commits go out
        changes = published(kafka.bootstrap_servers, topics.risk_changes)
        digest = hashlib.sha256("\n".join(changes).encode()).hexdigest()[:16]
        print(f"  level changes published: {len(changes)} (digest {digest})")
        if args.changes:
            args.changes.write_text("".join(c + "\n" for c in changes))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        shutil.rmtree(work / "data")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        recovery = wait_ready(url, process)
        print(f"  recovery of {len(locations)} locations from the changelog (no local store): {recovery:.1f} s")
        out["worker"] = {
            "events": len(records),
            "raw_eps": raw_rate,
            "worker_eps": rate,
            "worker_cpu_eps": cpu_rate,
            "changes": len(changes),
            "changes_digest": digest,
            "recovery_s": recovery,
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)


def part_national(args: argparse.Namespace, policy: Policy, out: dict[str, Any]) -> None:
    scenario = Scenario("national", args.seed, None, args.national_days, "national")
    started = time.monotonic()
    run = run_scenario(scenario, policy, workers=args.workers)
    wall = time.monotonic() - started
    peak = (
        max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        / 1024
    )
    rate = run.events / run.replay_cpu_s
    year = run.events * 365 / args.national_days
    print(
        f"national: {len(run.locations):,} locations, {args.national_days} days, {run.events:,} events, {args.workers} processes"
    )
    print(
        f"  wall {wall:.0f} s (with generating the events), replay CPU {run.replay_cpu_s:.0f} s: {rate:,.0f} events/s per process; peak memory {peak:,.0f} MiB per process"
    )
    print(
        f"  a year (~{year / 1e6:.1f} million events) at this rate: ~{year / rate / args.workers / 60:.0f} min of replay on {args.workers} processes (target <= 15 min)"
    )
    out["national"] = {
        "days": args.national_days,
        "events": run.events,
        "wall_s": wall,
        "cpu_s": run.replay_cpu_s,
        "eps_per_process": rate,
        "peak_mib": peak,
        "year_minutes": year / rate / args.workers / 60,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--seed", type=int, default=201)
    parser.add_argument("--locations", type=int, default=80)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--national-days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--changes", type=Path, help="worker: write the level changes it published here")
    parser.add_argument(
        "--partition", type=int, help="worker: only the events of this partition (a deterministic order: see above)"
    )
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    policy = load_policy(DEFAULT_POLICY)
    out: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    for part in PARTS:
        if part in parts:
            globals()[f"part_{part}"](args, policy, out)
    out.pop("_states", None)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
