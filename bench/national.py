"""A national period through the real scorer: how long a backfill or a recovery after a
long outage of the whole country takes with `--workers` `caresignal scorer` processes
(issue 18's target: a national year in 20 minutes or less with 2 workers).

The simulator's national population (25,000 locations) for `--days`, dated to end
yesterday, is written to fresh topics first (the directory, then the events keyed by
location in arrival order, as `caresignal simulate --kafka` writes them). Then the
workers start together in one consumer group, each with its own state directory, and
score the topic from its start. Measured: wall time from their start until the group's
committed offsets reach the end of the event topic (startup, the directory's 25,000
records and the rebalance included, and also given apart), events/s, each worker's CPU
seconds; and, as the baseline in the same run, a raw aiokafka consumer loop over the same
topic. A year is extrapolated at the measured rate; a year's states hold more history
than a month's, so the extrapolation is a lower bound.

Run on demand: `make bench-national` (`BENCH_ARGS="--days 7"` for a short run).
"""

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scoring import cpu_seconds, metric_sum, raw_loop  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from services.broker.local import LocalBroker  # noqa: E402
from services.broker.settings import KafkaSettings  # noqa: E402
from services.broker.topics import create_topics  # noqa: E402
from services.simulator.config import SimulationConfig  # noqa: E402
from services.simulator.run import simulate  # noqa: E402
from services.simulator.sinks import KafkaSink  # noqa: E402
from tests.service_process import ScorerProcess, group_lag, start_together  # noqa: E402

YEAR_DAYS = 365


def write_world(bootstrap: str, topics: Topics, seed: int, days: int) -> int:
    start = (datetime.now(UTC) - timedelta(days=days + 1)).date()
    config = dataclasses.replace(SimulationConfig(seed=seed, scale="national", days=days), start=start)
    started = time.monotonic()
    result = simulate(config, KafkaSink(bootstrap, topics), publish_directory=True)
    print(f"world: {result.events:,} events of {days} days written in {time.monotonic() - started:.0f} s", flush=True)
    return result.events


def score(bootstrap: str, topics: Topics, workers: int, work: Path, events: int) -> dict[str, float]:
    prefix = topics.events.split(".", 1)[0]
    app_id = f"{prefix}-scorer"
    scorers = [
        ScorerProcess(topic_prefix=prefix, workdir=work / f"scorer-{n}", port=6400 + n, app_id=app_id)
        for n in range(workers)
    ]
    for scorer in scorers:
        scorer.workdir.mkdir(parents=True)
    started = time.monotonic()
    try:
        start_together(scorers, timeout_s=900)
        ready = time.monotonic() - started
        cpu_at_ready = sum(cpu_seconds(s.process.pid) for s in scorers if s.process is not None)
        while any(group_lag(bootstrap, app_id, topics.events).values()):
            if time.monotonic() - started > 3 * 3600:
                raise RuntimeError("the workers did not finish within three hours")
            time.sleep(1)
        wall = time.monotonic() - started
        cpu = sum(cpu_seconds(s.process.pid) for s in scorers if s.process is not None)
        counted = sum(metric_sum(s.url, "caresignal_scoring_events_total") for s in scorers)
    finally:
        for scorer in scorers:
            scorer.stop()
    return {"ready_s": ready, "wall_s": wall, "cpu_s": cpu, "cpu_after_ready_s": cpu - cpu_at_ready, "counted": counted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    # Event time only: no time signals from the wall clock while the backlog is scored.
    os.environ["CARESIGNAL_SCORING_CLOCK_INTERVAL_S"] = "0"
    kafka = KafkaSettings()
    if not kafka.external:
        LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap).start()
    bootstrap = kafka.bootstrap_servers
    topics = Topics.with_prefix(f"benchn{uuid.uuid4().hex[:6]}")
    create_topics(bootstrap, topics)
    events = write_world(bootstrap, topics, args.seed, args.days)
    raw_rate = asyncio.run(raw_loop(bootstrap, topics.events, events))
    with tempfile.TemporaryDirectory(prefix="caresignal-bench-national-") as work:
        figures = score(bootstrap, topics, args.workers, Path(work), events)
    rate = events / figures["wall_s"]
    year_min = events * YEAR_DAYS / args.days / rate / 60
    print(f"  raw aiokafka consumer loop, same topic: {raw_rate:10,.0f} events/s")
    print(
        f"  {args.workers} scorer workers: {figures['wall_s']:.0f} s in all ({figures['ready_s']:.0f} s until every worker"
        f" was ready): {rate:,.0f} events/s ({rate / raw_rate:.1%} of the raw loop); CPU {figures['cpu_s']:.0f} s"
        f" ({events / figures['cpu_after_ready_s']:,.0f} events per CPU second after the start);"
        f" events counted {figures['counted']:,.0f} of {events:,}"
    )
    print(
        f"  a national year (~{events * YEAR_DAYS / args.days / 1e6:.1f} million events) at this rate: ~{year_min:.0f} min"
        f" on {args.workers} workers (target <= 20 min)"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"days": args.days, "events": events, "raw_eps": raw_rate, "eps": rate, **figures})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
