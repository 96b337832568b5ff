"""Ingest throughput against the real broker, each path next to a baseline from the same run.

- Single-event path: `POST /v1/events` through the real ingest service (validation,
  auth, Kafka acks=all) vs a bare ASGI endpoint returning a fixed body, both served by
  the same uvicorn configuration and driven by the same wrk load.
- Batch path: `POST /v1/events/batch` with 1,000 events per request vs a raw kafka-python
  producer loop (acks=all, idempotent) sending the same serialized events.

Rounds alternate baseline and subject so that machine noise hits both; the reported
ratio is the median of the per-round ratios. Run on demand: `make bench`.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.asgi_lifespan import serve_lifespan  # noqa: E402
from schemas.examples import example_event  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from services.broker.local import LocalBroker  # noqa: E402
from services.broker.settings import KafkaSettings  # noqa: E402
from services.broker.topics import create_topics  # noqa: E402
from services.ingest.auth import hash_key  # noqa: E402
from services.ingest.publisher import producer_config  # noqa: E402
from services.ingest.settings import IngestSettings  # noqa: E402

SOURCE = "urn:caresignal:source:bench"
KEY = "cs_bench_" + uuid.uuid4().hex


async def bare_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """The baseline: an ASGI endpoint that reads the body and returns a fixed answer."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'{"id":"x","status":"accepted"}'
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def fastapi_floor_app():  # type: ignore[no-untyped-def]
    """A second reference: the cheapest FastAPI route, to show what the framework costs."""
    from fastapi import FastAPI, Request, Response

    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/v1/events")
    async def accept(request: Request) -> Response:
        await request.body()
        return Response(b'{"id":"x","status":"accepted"}', status_code=202, media_type="application/json")

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class WrkResult:
    requests_per_s: float
    non_2xx: int
    p50_ms: float
    p99_ms: float


def wrk(url: str, body_file: Path, content_type: str, seconds: int, connections: int) -> WrkResult:
    script = body_file.with_suffix(".lua")
    script.write_text(
        f'wrk.method = "POST"\n'
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if errors:
        print(f"    wrk: {errors.group(0)}")

    def latency(pct: str) -> float:
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return WrkResult(rps, int(non.group(1)) if non else 0, latency("50"), latency("99"))


def raw_producer_rate(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]], seconds: float) -> float:
    # The same producer configuration as ingest: the ratio then measures ingest's own cost.
    settings = IngestSettings()
    producer = KafkaProducer(**producer_config(bootstrap, settings.produce_timeout_s, settings.linger_ms, "bench-raw"))
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for key, value in values:
            producer.send(topic, key=key, value=value)
        sent += len(values)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return sent / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="duration of each measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections, single-event path")
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-fastapi", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_bare:
        import uvicorn

        uvicorn.run(bare_app, host="127.0.0.1", port=args.serve_bare, log_level="warning", access_log=False)
        return 0
    if args.serve_fastapi:
        import uvicorn

        uvicorn.run(
            fastapi_floor_app(), host="127.0.0.1", port=args.serve_fastapi, log_level="warning", access_log=False
        )
        return 0

    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 2

    kafka = KafkaSettings()
    if not kafka.external:
        LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap).start()
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    topics = Topics.with_prefix(prefix)
    create_topics(kafka.bootstrap_servers, topics)

    work = Path(tempfile.mkdtemp(prefix="caresignal-bench-"))
    keys = work / "keys.toml"
    keys.write_text(
        f'[[key]]\nname = "bench"\nsha256 = "{hash_key(KEY)}"\nsource = "{SOURCE}"\n'
        f'event_types = ["missed_visit", "complaint"]\n'
    )
    single = work / "single.json"
    single.write_text(json.dumps(example_event("missed_visit", event_id="bench-1", source=SOURCE)))
    batch_events = [
        example_event("missed_visit", event_id=f"bench-{i}", source=SOURCE, location_id=f"1-1{i:08d}")
        for i in range(1000)
    ]
    batch = work / "batch.ndjson"
    batch.write_text("\n".join(json.dumps(e) for e in batch_events) + "\n")

    bare_port, floor_port, ingest_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "CARESIGNAL_INGEST_PORT": str(ingest_port),
        "CARESIGNAL_INGEST_API_KEYS_FILE": str(keys),
        "CARESIGNAL_TOPIC_PREFIX": prefix,
    }
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve-bare", str(bare_port)]),
        subprocess.Popen([sys.executable, __file__, "--serve-fastapi", str(floor_port)]),
        subprocess.Popen([sys.executable, "-m", "services.cli", "ingest"], env=env, cwd=ROOT),
    ]
    try:
        wait_http(f"http://127.0.0.1:{bare_port}/")
        wait_http(f"http://127.0.0.1:{floor_port}/docs")
        wait_http(f"http://127.0.0.1:{ingest_port}/healthz")
        bare_url = f"http://127.0.0.1:{bare_port}/v1/events"
        floor_url = f"http://127.0.0.1:{floor_port}/v1/events"
        single_url = f"http://127.0.0.1:{ingest_port}/v1/events"
        batch_url = f"http://127.0.0.1:{ingest_port}/v1/events/batch"
        # Warm up: connections, producer metadata, JIT-free but caches and allocator.
        wrk(single_url, single, "application/json", 2, args.connections)
        wrk(batch_url, batch, "application/x-ndjson", 2, args.batch_connections)

        single_ratios, floor_ratios, batch_ratios = [], [], []
        serialized = [(e["subject"].encode(), json.dumps(e).encode()) for e in batch_events]
        for round_no in range(1, args.rounds + 1):
            bare = wrk(bare_url, single, "application/json", args.seconds, args.connections)
            floor = wrk(floor_url, single, "application/json", args.seconds, args.connections)
            ingest = wrk(single_url, single, "application/json", args.seconds, args.connections)
            raw = raw_producer_rate(kafka.bootstrap_servers, topics.events, serialized, args.seconds)
            batched = wrk(batch_url, batch, "application/x-ndjson", args.seconds, args.batch_connections)
            assert bare.non_2xx == 0 and ingest.non_2xx == 0 and batched.non_2xx == 0, "non-2xx answers"
            single_ratios.append(ingest.requests_per_s / bare.requests_per_s)
            floor_ratios.append(ingest.requests_per_s / floor.requests_per_s)
            batch_ratios.append(batched.requests_per_s * 1000 / raw)
            print(
                f"round {round_no}: bare ASGI {bare.requests_per_s:7.0f} req/s | bare FastAPI {floor.requests_per_s:6.0f} req/s | ingest single {ingest.requests_per_s:7.0f} req/s "
                f"(p50 {ingest.p50_ms:.1f} ms, p99 {ingest.p99_ms:.1f} ms) | raw producer {raw:8.0f} ev/s | "
                f"ingest batch {batched.requests_per_s * 1000:8.0f} ev/s (p50 {batched.p50_ms:.0f} ms)"
            )
        print()
        print(
            f"single-event path: {statistics.median(single_ratios):.0%} of the bare endpoint (target >= 30%); "
            f"rounds: {', '.join(f'{r:.0%}' for r in single_ratios)}"
        )
        print(
            f"                   {statistics.median(floor_ratios):.0%} of the cheapest FastAPI route (reference); "
            f"rounds: {', '.join(f'{r:.0%}' for r in floor_ratios)}"
        )
        print(
            f"batch path:        {statistics.median(batch_ratios):.0%} of the raw producer (target >= 60%); "
            f"rounds: {', '.join(f'{r:.0%}' for r in batch_ratios)}"
        )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
