"""Scoring throughput, state size and changelog recovery, against the real broker.

- Throughput: events per second through the real worker (`caresignal scorer`: Faust,
  RocksDB table, changelog, the risk model) next to a raw aiokafka consumer loop over
  the same topic, measured in the same run.
- State size per location: bytes of the JSON state the table stores, after 1 and after
  20 events.
- Recovery: the worker's local store is deleted and it restarts; the time until it is
  ready again is the time to rebuild every location's state from the changelog.

Run on demand: `make bench-scoring` (default 50,000 locations, one event each).
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.events import EventParser  # noqa: E402
from schemas.examples import example_event  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from services.broker.local import LocalBroker  # noqa: E402
from services.broker.settings import KafkaSettings  # noqa: E402
from services.broker.topics import create_topics  # noqa: E402
from services.scoring.model import assess  # noqa: E402
from services.scoring.policy import DEFAULT_POLICY, load_policy  # noqa: E402

KINDS = ["complaint", "missed_visit", "ccg_flag", "contract_monitoring", "health_use", "workforce"]


def events(locations: int, per_location: int) -> list[tuple[bytes, bytes]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
    out = []
    for round_no in range(per_location):
        for n in range(locations):
            loc = f"1-5{n:08d}"
            kind = KINDS[(n + round_no) % len(KINDS)]
            event = example_event(
                kind,
                event_id=f"b-{n}-{round_no}",
                location_id=loc,
                time=start + timedelta(hours=round_no, seconds=n % 3600),
            )
            out.append((loc.encode(), json.dumps(event).encode()))
    return out


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    for key, value in records:
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
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                seen += len(records)
    finally:
        await consumer.stop()
    return expected / (time.perf_counter() - started)


def processed(url: str) -> float:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("caresignal_scoring_events_total{")
    )


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


def state_sizes() -> tuple[int, int]:
    policy = load_policy(DEFAULT_POLICY)
    parser = EventParser()
    state = None
    sizes = []
    start = datetime.now(UTC) - timedelta(days=30)
    for i in range(20):
        kind = KINDS[i % len(KINDS)]
        event = parser.parse_obj(example_event(kind, event_id=f"s-{i}", time=start + timedelta(days=i)))
        state = assess(state, None, event, policy).state
        sizes.append(len(state.model_dump_json()))
    return sizes[0], sizes[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locations", type=int, default=50_000)
    parser.add_argument("--per-location", type=int, default=1)
    args = parser.parse_args()

    kafka = KafkaSettings()
    if not kafka.external:
        LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap).start()
    prefix = f"benchs{uuid.uuid4().hex[:6]}"
    topics = Topics.with_prefix(prefix)
    create_topics(kafka.bootstrap_servers, topics)
    records = events(args.locations, args.per_location)
    total = len(records)
    print(f"producing {total} events for {args.locations} locations ...")
    produce(kafka.bootstrap_servers, topics.events, records)

    raw_rate = asyncio.run(raw_loop(kafka.bootstrap_servers, topics.events, total))
    print(f"raw aiokafka consumer loop: {raw_rate:10.0f} events/s")

    work = Path(tempfile.mkdtemp(prefix="caresignal-bench-scoring-"))
    port = 6100 + os.getpid() % 500
    env = {
        **os.environ,
        "CARESIGNAL_TOPIC_PREFIX": prefix,
        "CARESIGNAL_SCORING_APP_ID": f"{prefix}-scorer",
        "CARESIGNAL_SCORING_WEB_PORT": str(port),
        "CARESIGNAL_SCORING_DATA_DIR": str(work / "data"),
        "CARESIGNAL_SCORING_LOG_LEVEL": "warn",
    }
    url = f"http://127.0.0.1:{port}"
    log = (work / "scorer.log").open("wb")
    command = [sys.executable, "-m", "services.cli", "scorer"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, process)
        started = time.perf_counter()
        while processed(url) < total:
            if time.perf_counter() - started > 3600:
                raise RuntimeError("the scorer did not finish within an hour")
            time.sleep(0.25)
        worker_rate = total / (time.perf_counter() - started)
        print(
            f"scoring worker:             {worker_rate:10.0f} events/s "
            f"({worker_rate / raw_rate:.1%} of the raw loop; target >= 25%)"
        )

        time.sleep(5)  # let the last changelog writes and offset commits go out
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        shutil.rmtree(work / "data")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        recovery = wait_ready(url, process)
        print(
            f"recovery of {args.locations} locations from the changelog (no local store): {recovery:.1f} s "
            "(process start to ready)"
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)

    one, twenty = state_sizes()
    print(f"state per location: {one} bytes after 1 event, {twenty} bytes after 20 events (JSON, as stored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
