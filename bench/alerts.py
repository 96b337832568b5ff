"""Alert delivery throughput and latency against the real broker, next to a baseline from the same run.

- Service: the real `caresignal alerts` process (its own SQLite database, contact file
  and consumer group, fresh topics every round) reads level changes produced straight
  to the risk-change topic as fast as possible, stores alerts and deliveries, and sends
  every delivery as a signed webhook. Deliveries per second are counted from the first
  change produced to the last webhook received.
- Baseline: a plain asyncio loop doing what the service minimally must per delivery:
  sign (`services.alerts.signing.signature_headers`) and POST with `httpx.AsyncClient`
  at the same concurrency (32), the same number of deliveries, bodies of the same size
  (rendered beforehand by the service's own code), to the same receiver.
- Stated load: level changes at a fixed modest rate (default 20/s for 15 s); latency
  from each change's Kafka record timestamp to its webhook's arrival.

The receiver is a raw ASGI app under uvicorn in a process of its own. It verifies
nothing; it records the `webhook-id` header, the arrival time and `data.alert_id`
(a byte search, no JSON parse) of every request. Every expected (alert, authority)
delivery must arrive exactly once: duplicates are reported, missing deliveries fail
the run.

Rounds alternate baseline and service so that machine noise hits both; the reported
ratio is the median of the per-round ratios. Run on demand: `make bench-alerts`.
"""

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.asgi_lifespan import serve_lifespan  # noqa: E402
from schemas.alerts import AlertKind, Recipient, RecipientRole  # noqa: E402
from schemas.directory import Authority, Location, Placement, PlacementStatus, ServiceType  # noqa: E402
from schemas.risk import Action, EvidenceRef, LevelChange, LevelName, RuleFiring  # noqa: E402
from schemas.topics import Topics  # noqa: E402
from services.alerts.messages import AlertContent, Links, notification, webhook_body  # noqa: E402
from services.alerts.routing import alert_id_for, delivery_id_for  # noqa: E402
from services.alerts.settings import AlertsSettings  # noqa: E402
from services.alerts.signing import signature_headers  # noqa: E402
from services.broker.local import LocalBroker  # noqa: E402
from services.broker.settings import KafkaSettings  # noqa: E402
from services.broker.topics import create_topics  # noqa: E402
from services.ingest.auth import hash_key  # noqa: E402
from tests.service_process import AlertsProcess, free_port  # noqa: E402

CONCURRENCY = AlertsSettings.model_fields["max_in_flight"].default  # 32
USER_AGENT = AlertsSettings.model_fields["user_agent"].default
# ONS codes of the authorities (unitary, metropolitan, London, county; all valid OnsCode).
AUTHORITY_CODES = [f"E{kind}{n:06d}" for kind in ("06", "08", "09", "10") for n in range(1, 4)]


# --- the receiver (runs in a process of its own) ------------------------------------

_RECORDS: list[tuple[float, str, str, str]] = []


async def _reply(send: Any, status: int, body: bytes = b"") -> None:
    headers = [(b"content-type", b"application/json")] if body else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def receiver_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """Records (arrival, path, webhook-id, data.alert_id) of every POST under /hooks/ and answers 204."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    arrived = time.time()
    path = scope["path"]
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if path.startswith("/hooks/"):
        webhook_id = ""
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                webhook_id = value.decode()
                break
        alert_id = ""
        at = body.find(b'"alert_id":"')
        if at >= 0:
            alert_id = body[at + 12 : body.find(b'"', at + 12)].decode()
        _RECORDS.append((arrived, path[7:], webhook_id, alert_id))
        await _reply(send, 204)
    elif path == "/_count":
        await _reply(send, 200, str(len(_RECORDS)).encode())
    elif path == "/_take":
        taken = _RECORDS[:]
        del _RECORDS[: len(taken)]
        await _reply(send, 200, json.dumps(taken).encode())
    else:
        await _reply(send, 404)


@dataclass
class Receiver:
    url: str
    process: subprocess.Popen[bytes]
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @classmethod
    def start(cls) -> "Receiver":
        port = free_port()
        process = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(port)], cwd=ROOT)
        receiver = cls(f"http://127.0.0.1:{port}", process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                receiver.count()
                return receiver
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the webhook receiver did not come up")

    def count(self) -> int:
        return int(self.client.get(f"{self.url}/_count").text)

    def take(self) -> list[tuple[float, str, str, str]]:
        return [tuple(r) for r in self.client.post(f"{self.url}/_take").json()]  # type: ignore[misc]

    def wait_for(
        self, expected: int, stall_s: float = 30, grace_s: float = 2.0, on_done: Any = None
    ) -> list[tuple[float, str, str, str]]:
        """Until `expected` requests arrived (or none for `stall_s`), then `grace_s` more for duplicates."""
        last, last_change = -1, time.monotonic()
        while True:
            n = self.count()
            if n >= expected:
                break
            if n != last:
                last, last_change = n, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                print(f"    receiver: stalled at {n} of {expected} requests for {stall_s:.0f} s")
                break
            time.sleep(0.05)
        if on_done is not None:
            on_done()
        time.sleep(grace_s)
        return self.take()

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=15)


# --- the scenario -------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True)
class Scenario:
    """Authorities with a webhook each; every location has a host and two placing authorities."""

    receiver_url: str
    secrets: dict[str, str]

    @staticmethod
    def endpoint(authority: str) -> str:
        return f"hook-{authority.lower()}"

    def url(self, authority: str) -> str:
        return f"{self.receiver_url}/hooks/{authority}"

    def authorities_of(self, n: int) -> list[str]:
        """Host first, then the placing authorities."""
        codes = AUTHORITY_CODES
        return [codes[n % len(codes)], codes[(n + 1) % len(codes)], codes[(n + 2) % len(codes)]]

    def contacts(self) -> str:
        doc = {
            "authorities": {
                code: {
                    "webhooks": [
                        {"id": self.endpoint(code), "url": self.url(code), "secret": secret, "min_level": "minor"}
                    ]
                }
                for code, secret in self.secrets.items()
            }
        }
        return json.dumps(doc)  # JSON is YAML


def location_id(n: int) -> str:
    return f"1-7{n:08d}"


def provider_id(n: int) -> str:
    return f"1-6{n // 4:08d}"


def level_change(n: int) -> LevelChange:
    """One escalation of location n, shaped like the scorer's (two rules, four evidence refs)."""
    now = datetime.now(UTC)
    evidence = [
        EvidenceRef(
            event_id=f"bench-{n}-{i}",
            source="urn:caresignal:source:bench",
            type="uk.caresignal.safeguarding_concern.v1" if i % 2 else "uk.caresignal.complaint.v1",
            time=now - timedelta(days=i + 1),
        )
        for i in range(4)
    ]
    return LevelChange(
        change_id=f"{location_id(n)}:1",
        sequence=1,
        location_id=location_id(n),
        provider_id=provider_id(n),
        old_level=LevelName.minor,
        new_level=LevelName.moderate,
        direction="escalation",
        score=7.5,
        reasons=[
            RuleFiring(
                rule_id="safeguarding_concerns_90d",
                family="pattern",
                level=LevelName.moderate,
                description="Two or more safeguarding concerns in 90 days",
                measure=2,
                evidence_count=2,
                evidence=evidence[1::2],
            ),
            RuleFiring(
                rule_id="complaints_rise",
                family="rise",
                level=LevelName.minor,
                description="Complaints above the location's own baseline",
                measure=2.4,
                evidence_count=2,
                evidence=evidence[0::2],
            ),
        ],
        actions=[Action(action="Review open safeguarding enquiries", lead="Safeguarding")],
        meaning="Concerns are rising; the service may not be keeping people safe",
        policy_version="bench-1",
        decided_at=now,
    )


def expected_deliveries(scenario: Scenario, locations: range) -> dict[str, tuple[int, str]]:
    """webhook-id -> (location number, authority), for every (alert, authority) that must be told."""
    out = {}
    for n in locations:
        alert_id = alert_id_for(f"{location_id(n)}:1")
        for authority in scenario.authorities_of(n):
            out[delivery_id_for(alert_id, authority, "webhook", scenario.endpoint(authority))] = (n, authority)
    return out


def publish_directory(bootstrap: str, topics: Topics, scenario: Scenario, locations: range) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    for code in scenario.secrets:
        authority = Authority(ons_code=code, name=f"Bench council {code}")
        producer.send(topics.authorities, key=code.encode(), value=authority.model_dump_json().encode())
    for n in locations:
        host, *placers = scenario.authorities_of(n)
        location = Location(
            location_id=location_id(n),
            provider_id=provider_id(n),
            service_type=ServiceType.care_home,
            capacity=40,
            host_authority=host,
            name=f"Bench House {n}",
        )
        producer.send(topics.locations, key=location.key.encode(), value=location.model_dump_json().encode())
        for authority in placers:
            placement = Placement(
                authority=authority, location_id=location_id(n), people_placed=2, status=PlacementStatus.active
            )
            producer.send(topics.placements, key=placement.key.encode(), value=placement.model_dump_json().encode())
    producer.flush()
    producer.close()


# --- results ------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Check:
    expected: int
    received: int
    duplicates: int
    missing: int
    unexpected: int
    wrong_path: int

    @property
    def ok(self) -> bool:
        return self.missing == 0

    def describe(self) -> str:
        text = f"{self.received} received of {self.expected} expected"
        for name in ("duplicates", "missing", "unexpected", "wrong_path"):
            if getattr(self, name):
                text += f", {getattr(self, name)} {name.replace('_', ' ')}"
        return text


def check(records: list[tuple[float, str, str, str]], expected: dict[str, str]) -> Check:
    """`expected`: webhook-id -> the authority (receiver path) it must reach."""
    counts = Counter(r[2] for r in records)
    wrong = sum(1 for _, path, wid, _ in records if wid in expected and expected[wid] != path)
    return Check(
        expected=len(expected),
        received=len(records),
        duplicates=sum(c - 1 for c in counts.values() if c > 1),
        missing=sum(1 for wid in expected if wid not in counts),
        unexpected=sum(1 for wid in counts if wid not in expected),
        wrong_path=wrong,
    )


@dataclass
class Stages:
    """Where the time went, per delivery, from the service's own database (ms, p50 and p99)."""

    consumer: tuple[float, float]  # Kafka timestamp -> alert and deliveries stored
    outbox: tuple[float, float]  # stored -> the (first and only) attempt starts
    attempt: tuple[float, float]  # render, sign, POST, answer (the attempt's duration_ms)
    stored_all_s: float  # first change's Kafka timestamp -> the last alert stored
    attempts_per_delivery: float

    def describe(self) -> str:
        return (
            f"Kafka -> stored (consumer) {self.consumer[0]:,.0f} / {self.consumer[1]:,.0f}; "
            f"stored -> attempt starts (outbox) {self.outbox[0]:,.0f} / {self.outbox[1]:,.0f}; "
            f"attempt {self.attempt[0]:,.0f} / {self.attempt[1]:,.0f}; "
            f"last alert stored {self.stored_all_s:.1f} s after the first change; "
            f"{self.attempts_per_delivery:.2f} attempts per delivery"
        )


@dataclass
class ServiceResult:
    deliveries: int
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    check: Check
    cpu_ms: float  # CPU time of the service process per delivery
    produce_s: float
    stages: Stages
    metrics: dict[str, float]


@dataclass
class BaselineResult:
    deliveries: int
    rate: float
    check: Check
    cpu_ms: float  # CPU time of the loop's process per delivery


# --- the service round --------------------------------------------------------------


def production_delivery_settings() -> dict[str, str]:
    """AlertsProcess sets short test timings; a benchmark measures the shipped defaults."""
    fields = AlertsSettings.model_fields
    names = ("poll_interval_s", "backoff_initial_s", "backoff_max_s", "claim_lease_s", "http_timeout_s")
    return {f"CARESIGNAL_ALERTS_{name.upper()}": str(fields[name].default) for name in names}


def scrape(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=10).text
    wanted = ("caresignal_alerts_delivery_latency_seconds", "caresignal_alerts_notifications_total{")
    for line in text.splitlines():
        if line.startswith(wanted) and 'channel="webhook"' in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def histogram_quantile(metrics: dict[str, float], q: float) -> float:
    """The upper bound of the bucket holding quantile q (Prometheus-style, no interpolation)."""
    buckets = []
    for name, value in metrics.items():
        if "_bucket{" in name:
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    for le, cumulative in buckets:
        if cumulative >= q * total:
            return le
    return float("inf")


def stages_from_db(db: Path, since: float) -> Stages:
    con = sqlite3.connect(db)
    rows = con.execute(
        """
        SELECT a.published_at, a.created_at, d.created_at, t.at, t.duration_ms
        FROM deliveries d JOIN alerts a ON a.id = d.alert_id
        JOIN delivery_attempts t ON t.delivery_id = d.id
        WHERE a.published_at >= ? AND t.outcome = 'delivered'
        """,
        (since,),
    ).fetchall()
    attempts_per_delivery = con.execute(
        "SELECT COUNT(*) * 1.0 / MAX(1, COUNT(DISTINCT delivery_id)) FROM delivery_attempts"
    ).fetchone()[0]
    con.close()
    consumer = [(stored - published) * 1000 for published, stored, _, _, _ in rows]
    waiting = [((at - duration / 1000) - created) * 1000 for _, _, created, at, duration in rows]
    attempt = [duration for *_, duration in rows]
    return Stages(
        consumer=(pct(consumer, 50), pct(consumer, 99)),
        outbox=(pct(waiting, 50), pct(waiting, 99)),
        attempt=(pct(attempt, 50), pct(attempt, 99)),
        stored_all_s=max((r[1] for r in rows), default=since) - since,
        attempts_per_delivery=attempts_per_delivery,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_round(
    kafka: KafkaSettings,
    receiver: Receiver,
    scenario: Scenario,
    work: Path,
    changes: int,
    rate: float | None = None,
) -> ServiceResult:
    prefix = f"benchal{uuid.uuid4().hex[:6]}"
    topics = Topics.with_prefix(prefix)
    create_topics(kafka.bootstrap_servers, topics)
    warmup = range(changes, changes + 1)
    measured = range(changes)
    publish_directory(kafka.bootstrap_servers, topics, scenario, range(changes + 1))
    workdir = work / prefix
    workdir.mkdir()
    process = AlertsProcess(
        topic_prefix=prefix,
        workdir=workdir,
        smtp_port=free_port(),  # closed; no email contact points anyway
        group=f"{prefix}-alerts",
        settings=production_delivery_settings(),
    )
    process.contacts_file.write_text(scenario.contacts())
    process.keys_file.write_text(
        f'[[key]]\nname = "bench"\nsha256 = "{hash_key("cs_bench_" + uuid.uuid4().hex)}"\noperator = true\n'
    )
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=0 if rate else 5)
    bodies = {n: (location_id(n).encode(), level_change(n).model_dump_json().encode()) for n in (*measured, *warmup)}
    try:
        receiver.take()
        process.start()
        # Warm-up: the consumer joins its group and the HTTP client connects before timing.
        key, value = bodies[warmup[0]]
        producer.send(topics.risk_changes, key=key, value=value).get(timeout=30)
        warm = receiver.wait_for(3, grace_s=0.5)
        if len(warm) < 3:
            raise RuntimeError(f"warm-up delivery did not arrive:\n{process.log_tail()}")

        expected_ids = expected_deliveries(scenario, measured)
        expected = {wid: authority for wid, (_, authority) in expected_ids.items()}
        futures = []
        assert process.process is not None
        pid = process.process.pid
        cpu = [cpu_seconds(pid)]
        started = time.time()
        for n in measured:
            if rate:
                delay = started + n / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            key, value = bodies[n]
            futures.append((n, producer.send(topics.risk_changes, key=key, value=value)))
        producer.flush()
        produce_s = time.time() - started
        # The Kafka record timestamp (CreateTime, set by the producer at send(), ms): the
        # same `published_at` the service measures its own latency from.
        timestamps = {n: future.get(timeout=30).timestamp / 1000 for n, future in futures}
        records = receiver.wait_for(len(expected), on_done=lambda: cpu.append(cpu_seconds(pid)))
        metrics = scrape(process.url)
    finally:
        producer.close()
        process.stop()
    result = check(records, expected)
    first: dict[str, float] = {}  # the first arrival of every expected delivery
    for arrived, _, wid, _ in sorted(records):
        if wid in expected:
            first.setdefault(wid, arrived)
    latencies = [(first[wid] - timestamps[n]) * 1000 for wid, (n, _) in expected_ids.items() if wid in first]
    last = max(first.values()) if first else started + 1
    stages = stages_from_db(workdir / "alerts.db", min(timestamps.values()) - 0.001)
    return ServiceResult(
        deliveries=len(expected),
        rate=len(first) / (last - started),
        p50_ms=pct(latencies, 50),
        p99_ms=pct(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        check=result,
        cpu_ms=(cpu[-1] - cpu[0]) * 1000 / max(1, len(first)),
        produce_s=produce_s,
        stages=stages,
        metrics=metrics,
    )


# --- the baseline round -------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    url: str
    authority: str
    secret: str
    webhook_id: str
    body: bytes


def baseline_jobs(scenario: Scenario, changes: int) -> list[Job]:
    """The same deliveries as a service round, with bodies rendered by the service's code."""
    links = Links(public_url=AlertsSettings.model_fields["public_url"].default)
    now = datetime.now(UTC)
    jobs = []
    for n in range(changes):
        change = level_change(n)
        alert_id = alert_id_for(change.change_id)
        content = AlertContent(alert_id, AlertKind.escalation, change, f"Bench House {n}")
        host, *placers = scenario.authorities_of(n)
        for authority in (host, *placers):
            role = RecipientRole.host if authority == host else RecipientRole.placing
            recipient = Recipient(authority=authority, roles=[role], locations=[location_id(n)])
            wid = delivery_id_for(alert_id, authority, "webhook", scenario.endpoint(authority))
            body = webhook_body(notification(content, recipient, wid, links, now))
            jobs.append(Job(scenario.url(authority), authority, scenario.secrets[authority], wid, body))
    return jobs


async def _baseline_send(jobs: list[Job], concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits, follow_redirects=False) as client:
        queue = iter(jobs)

        async def post(job: Job) -> None:
            headers = {
                **signature_headers(job.secret, job.webhook_id, int(time.time()), job.body),
                "content-type": "application/json",
                "user-agent": USER_AGENT,
            }
            response = await client.post(job.url, content=job.body, headers=headers)
            if not 200 <= response.status_code < 300:
                raise RuntimeError(f"receiver answered {response.status_code}")

        async def worker() -> None:
            for job in queue:
                await post(job)

        # Warm-up like the service's (one connection used before timing).
        warm = jobs[0]
        await post(Job(warm.url, warm.authority, warm.secret, "msg_warmup", warm.body))
        started = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return started


def baseline_round(receiver: Receiver, jobs: list[Job], concurrency: int) -> BaselineResult:
    receiver.take()
    cpu = time.process_time()
    started = asyncio.run(_baseline_send(jobs, concurrency))
    cpu = time.process_time() - cpu
    records = [r for r in receiver.wait_for(len(jobs) + 1, grace_s=0.5) if r[2] != "msg_warmup"]
    result = check(records, {job.webhook_id: job.authority for job in jobs})
    last = max((r[0] for r in records), default=started + 1)
    return BaselineResult(len(jobs), len(records) / (last - started), result, cpu * 1000 / max(1, len(records)))


# --- main ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--changes", type=int, default=2000, help="level changes per throughput round (3 deliveries each)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="stated load: level changes per second")
    parser.add_argument("--stated-seconds", type=float, default=15.0, help="stated load: how long")
    parser.add_argument("--quick", action="store_true", help="300 changes, 1 round, 5 s of stated load")
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_receiver:
        import uvicorn

        uvicorn.run(receiver_app, host="127.0.0.1", port=args.serve_receiver, log_level="warning", access_log=False)
        return 0
    if args.quick:
        args.changes, args.rounds, args.stated_seconds = 300, 1, 5.0

    kafka = KafkaSettings()
    if not kafka.external:
        LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap).start()
    work = Path(tempfile.mkdtemp(prefix="caresignal-bench-alerts-"))
    receiver = Receiver.start()
    scenario = Scenario(receiver.url, {code: new_secret() for code in AUTHORITY_CODES})
    deliveries = args.changes * 3
    print(
        f"{args.changes} level changes x 3 authorities (host + 2 placing) = {deliveries} webhooks per round, "
        f"{len(AUTHORITY_CODES)} authorities, concurrency {CONCURRENCY}, {os.cpu_count()} cores"
    )
    jobs = baseline_jobs(scenario, args.changes)
    failed = False
    baselines: list[BaselineResult] = []
    services: list[ServiceResult] = []
    try:
        for round_no in range(1, args.rounds + 1):
            base = baseline_round(receiver, jobs, CONCURRENCY)
            baselines.append(base)
            service = service_round(kafka, receiver, scenario, work, args.changes)
            services.append(service)
            failed |= not (base.check.ok and service.check.ok)
            print(
                f"round {round_no}: baseline sign+POST loop {base.rate:5.0f} deliveries/s "
                f"({base.cpu_ms:.1f} ms CPU each; {base.check.describe()}) | "
                f"service {service.rate:5.0f} deliveries/s ({service.cpu_ms:.1f} ms CPU each), "
                f"latency p50 {service.p50_ms / 1000:.1f} s, p99 {service.p99_ms / 1000:.1f} s "
                f"({service.check.describe()}; changes produced in {service.produce_s:.2f} s)"
            )
            for what, result in (("baseline", base.check), ("service", service.check)):
                if result.duplicates or result.unexpected or result.wrong_path:
                    print(f"    WARNING: {what}: {result.describe()}")
        stated_changes = max(1, int(args.rate * args.stated_seconds))
        print(f"stated load: {stated_changes} changes at {args.rate:g}/s ({stated_changes * 3} webhooks) ...")
        stated = service_round(kafka, receiver, scenario, work, stated_changes, rate=args.rate)
        failed |= not stated.check.ok
        print(f"  {stated.check.describe()}")
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)

    ratios = [s.rate / b.rate for s, b in zip(services, baselines, strict=True)]
    print()
    print("| measure | rounds | median |")
    print("|---|---|---|")
    print(
        f"| baseline: sign + POST loop, httpx, {CONCURRENCY} concurrent | "
        f"{', '.join(f'{b.rate:,.0f}' for b in baselines)} deliveries/s | "
        f"{statistics.median(b.rate for b in baselines):,.0f} deliveries/s |"
    )
    print(
        f"| service, {args.changes:,} changes as fast as possible (first produced -> last received) | "
        f"{', '.join(f'{s.rate:,.0f}' for s in services)} deliveries/s | "
        f"{statistics.median(s.rate for s in services):,.0f} deliveries/s |"
    )
    print(
        f"| CPU per delivery, baseline / service process | "
        f"{', '.join(f'{b.cpu_ms:.1f} / {s.cpu_ms:.1f} ms' for b, s in zip(baselines, services, strict=True))} | "
        f"{statistics.median(b.cpu_ms for b in baselines):.1f} / {statistics.median(s.cpu_ms for s in services):.1f} ms |"
    )
    print(
        f"| ratio service / baseline | {', '.join(f'{r:.0%}' for r in ratios)} | **{statistics.median(ratios):.0%}** |"
    )
    print(
        f"| burst latency, change -> received, p50 / p99 | "
        f"{', '.join(f'{s.p50_ms / 1000:.1f} / {s.p99_ms / 1000:.1f} s' for s in services)} | "
        f"{statistics.median(s.p50_ms for s in services) / 1000:.1f} / "
        f"{statistics.median(s.p99_ms for s in services) / 1000:.1f} s |"
    )
    print(
        f"| stated load, {args.rate:g} changes/s for {args.stated_seconds:g} s: change -> received p50 / p99 / max | "
        f"| {stated.p50_ms:,.0f} / {stated.p99_ms:,.0f} / {stated.max_ms:,.0f} ms |"
    )
    print()
    print("Where the time goes (per delivery, from the service's database; ms, p50 / p99):")
    for label, source in (("burst, last round", services[-1]), ("stated load", stated)):
        metrics = source.metrics
        outcomes = {
            k.split('outcome="', 1)[1].split('"', 1)[0]: int(v)
            for k, v in metrics.items()
            if k.startswith("caresignal_alerts_notifications_total") and v
        }
        print(f"  {label}: {source.stages.describe()}")
        print(
            f"    service's own histogram: p50 <= {histogram_quantile(metrics, 0.5)} s, "
            f"p99 <= {histogram_quantile(metrics, 0.99)} s (bucket bounds); webhook outcomes {outcomes}"
        )
    if failed:
        print("\nFAILED: deliveries were missing (see the rounds above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
