"""`caresignal scorer --replay` speed (services/scoring/rebuild.py), next to the pure
engine on the very same events in the same run.

A simulated region's year (the simulator's mix) goes to a fresh event topic with a time
signal to every partition each hour of event time, as `bench/scoring.py --parts engine`
emulates them; then:
- engine: the scorer's replay (`services/evaluation/replay.py`) of those events and
  signals in memory; CPU time, parsing left out;
- rebuild: `Rebuild.run` as `--replay` runs it, in this process: the topic read from the
  broker, every record parsed and scored, every change published, every state, peer row,
  partition clock and directory record written to the changelogs and acknowledged, the
  offsets committed; wall time, with `--processes` 1 and 2 (each its share of the
  partitions);
- worker (optional, `--worker`): the real `caresignal scorer` consuming the same topic,
  for the speed --replay had before.

Run on demand: `make bench-replay` or `python bench/replay.py --help`.
"""

import argparse
import gc
import json
import resource
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402

from bench.scoring import world  # noqa: E402
from schemas.clock import TIME_SIGNAL_KEY, TimeSignal  # noqa: E402
from schemas.events import EventParser  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from services.broker.local import LocalBroker  # noqa: E402
from services.broker.settings import KafkaSettings  # noqa: E402
from services.broker.topics import create_topics  # noqa: E402
from services.evaluation.replay import EPOCH, Replay  # noqa: E402
from services.scoring.policy import DEFAULT_POLICY, load_policy  # noqa: E402
from services.scoring.rebuild import Rebuild  # noqa: E402
from services.scoring.replay import history_end_offsets  # noqa: E402
from services.scoring.routing import PARTITIONS, partition_of  # noqa: E402
from services.scoring.settings import ScoringSettings  # noqa: E402

SLOT = timedelta(hours=1)


def with_signals(raw: list[dict[str, Any]], topic: str) -> list[tuple[str, bytes, bytes, int]]:
    """The events keyed by location, and a time signal to every partition each time the
    stream's time enters a new hour (the engine bench's emulated wall clock)."""
    records: list[tuple[str, bytes, bytes, int]] = []
    latest: datetime | None = None
    last_slot: datetime | None = None
    for event in raw:
        at = datetime.fromisoformat(event["time"])
        if latest is None or at > latest:
            latest = at
            slot = EPOCH + ((at - EPOCH) // SLOT) * SLOT
            if last_slot is None or slot > last_slot:
                last_slot = slot
                value = TimeSignal(time=slot).model_dump_json().encode()
                records.extend((topic, TIME_SIGNAL_KEY, value, p) for p in range(PARTITIONS))
        key = event["subject"].encode()
        records.append((topic, key, json.dumps(event).encode(), partition_of(key)))
    return records


def engine_rate(locations: dict[str, Any], raw: list[dict[str, Any]]) -> tuple[float, int]:
    policy = load_policy(DEFAULT_POLICY)
    parser = EventParser(future_tolerance=timedelta(days=3650))
    parsed = [parser.parse_obj(e) for e in raw]
    engine = Replay(locations, policy)
    gc.collect()
    started = time.process_time()
    for event in parsed:
        engine.event(event)
    return len(parsed) / (time.process_time() - started), len(engine.level_changes)


def rebuild_rate(kafka: KafkaSettings, prefix: str, events: int, processes: int) -> tuple[float, float, str]:
    """Events per second of wall time and of CPU time (this process's threads and the
    share processes'), and the rebuild's summary."""
    policy = load_policy(DEFAULT_POLICY)
    settings = ScoringSettings(app_id=f"{prefix}-scorer-{processes}p-{uuid.uuid4().hex[:4]}")
    rebuild = Rebuild(settings, kafka, policy, lambda locations: Replay(locations, policy, signal_hours=None))
    history = history_end_offsets(kafka)
    started, cpu = time.perf_counter(), _cpu()
    report = rebuild.run(history, processes=processes)
    return events / (time.perf_counter() - started), events / (_cpu() - cpu), report.summary()


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def produce(bootstrap: str, records: list[tuple[str, bytes, bytes, int]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    for topic, key, value, partition in records:
        producer.send(topic, key=key, value=value, partition=partition)
    producer.flush()
    producer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=201)
    parser.add_argument("--locations", type=int, default=80)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts for the rebuild")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    prefix = f"benchr{uuid.uuid4().hex[:6]}"
    kafka = KafkaSettings(topic_prefix=prefix)
    if not kafka.external:
        LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap).start()
    # Recent, so that nothing is older than the retention against the wall clock.
    start = datetime.now(UTC) - timedelta(days=args.days + 1)
    locations, raw, _ = world(args.seed, args.locations, args.days, start)
    topics: Topics = kafka.topics
    create_topics(kafka.bootstrap_servers, topics)
    records = with_signals(raw, topics.events)
    directory = [
        (topics.locations, k.encode(), loc.model_dump_json().encode(), partition_of(k.encode()))
        for k, loc in locations.items()
    ]
    print(f"replay: {len(raw):,} events and {len(records) - len(raw):,} time signals of {len(locations)} locations")
    produce(kafka.bootstrap_servers, directory + records)
    out: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "events": len(raw)}
    engine_eps, changes = engine_rate(locations, raw)
    print(f"  pure engine (CPU, parsing left out): {engine_eps:9,.0f} events/s, {changes} changes")
    out["engine_eps"] = engine_eps
    for processes in [int(p) for p in args.processes.split(",") if p]:
        eps, cpu_eps, summary = rebuild_rate(kafka, prefix, len(raw), processes)
        print(
            f"  --replay, {processes} process(es): {eps:9,.0f} events/s of wall time, {cpu_eps:,.0f} of CPU time "
            f"({cpu_eps / engine_eps:.0%} of the engine's CPU rate)"
        )
        print(f"    {summary}")
        out[f"rebuild_{processes}p"] = {"wall_eps": eps, "cpu_eps": cpu_eps}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
