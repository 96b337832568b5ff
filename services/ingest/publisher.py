"""Publishing to Kafka with kafka-python, bridged into asyncio.

kafka-python is thread-based: `send()` can block (metadata fetch, full buffer) and its
futures complete on the producer's I/O thread. So sends run on one dedicated thread,
and a whole request's records share one asyncio future that the I/O thread resolves
once, when the last acknowledgement (or error) arrives. The event loop never blocks.

The producer is idempotent with acks=all, so the broker's retries cannot duplicate a
record; a caller that resends after a 503 may duplicate one, which is why consumers
deduplicate on the CloudEvents (source, id) pair.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from services.broker.connection_check import require_connection
from services.broker.local import broker_answers
from services.broker.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time, or cannot be reached: safe to retry."""


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Delivered:
    partition: int
    offset: int


Outcome = Delivered | BrokerUnavailable

# Larger sends go to the send thread so that a 1,000-event batch does not hold up the
# event loop (and every other caller) while it is appended.
INLINE_SEND_MAX = 64


class _Completion:
    """Collects per-record outcomes on the I/O thread; wakes the loop once at the end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._remaining = count
        self.outcomes: list[Outcome | None] = [None] * count
        self.done: asyncio.Future[None] = loop.create_future()

    def settle(self, index: int, outcome: Outcome) -> None:
        with self._lock:
            if self.outcomes[index] is not None:
                return
            self.outcomes[index] = outcome
            self._remaining -= 1
            finished = self._remaining == 0
        if finished:
            self._loop.call_soon_threadsafe(self._finish)

    def expire(self) -> None:
        """Stop waiting: records without an outcome count as not acknowledged."""
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def producer_config(
    bootstrap_servers: str, timeout_s: float, linger_ms: int, client_id: str, security: KafkaSecurity = PLAINTEXT
) -> dict[str, Any]:
    """The ingest producer's configuration (the benchmark's raw baseline uses it too)."""
    timeout_ms = int(timeout_s * 1000)
    return {
        **security.kafka_python(),
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": linger_ms,
        # 256 KiB batches: a 1,000-event request fits in a few produce requests per
        # partition; with the 16 KiB default kafka-python's per-batch cost halves throughput.
        "batch_size": 256 * 1024,
        # A record the caller was told failed must not be written much later.
        "request_timeout_ms": max(timeout_ms - linger_ms - 1, 1000),
        "delivery_timeout_ms": max(timeout_ms, 1000 + linger_ms + 1),
        "max_block_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
    }


class KafkaPublisher:
    def __init__(
        self,
        bootstrap_servers: str,
        timeout_s: float,
        linger_ms: int = 5,
        client_id: str = "caresignal-ingest",
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._security = security
        self._timeout_s = timeout_s
        self._linger_ms = linger_ms
        self._client_id = client_id
        self._producer: KafkaProducer | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-send")
        self._connect_lock = asyncio.Lock()

    def _create_producer(self) -> KafkaProducer:
        # kafka-python would retry a refused login until its timeout and then report only
        # a timeout: check first, so that readiness and the log name the reason at once.
        require_connection(self._bootstrap, self._security, timeout_s=min(self._timeout_s, 5.0))
        return KafkaProducer(
            **producer_config(self._bootstrap, self._timeout_s, self._linger_ms, self._client_id, self._security)
        )

    async def _ensure_producer(self) -> KafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._connect_lock:
            if self._producer is None:
                loop = asyncio.get_running_loop()
                try:
                    self._producer = await loop.run_in_executor(self._executor, self._create_producer)
                except KafkaError as exc:
                    raise BrokerUnavailable(f"cannot connect to Kafka: {exc}") from exc
        return self._producer

    async def start(self) -> None:
        """Connect eagerly, but start anyway when the broker is down (readyz says so)."""
        try:
            await self._ensure_producer()
        except BrokerUnavailable as exc:
            log.warning("starting without a Kafka connection: %s", exc)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, lambda: producer.close(timeout=5))
        self._executor.shutdown(wait=False)

    def _send_all(self, producer: KafkaProducer, records: Sequence[OutRecord], completion: _Completion) -> None:
        for index, record in enumerate(records):
            try:
                future = producer.send(record.topic, value=record.value, key=record.key, headers=list(record.headers))
            except KafkaError as exc:
                completion.settle(index, BrokerUnavailable(f"Kafka refused the record: {exc}"))
                continue
            future.add_callback(_on_success, completion, index)
            future.add_errback(_on_failure, completion, index)

    async def publish(self, records: Sequence[OutRecord]) -> list[Outcome]:
        """Send records and wait for every acknowledgement, up to the timeout."""
        if not records:
            return []
        producer = await self._ensure_producer()
        loop = asyncio.get_running_loop()
        completion = _Completion(loop, len(records))
        if len(records) <= INLINE_SEND_MAX and _metadata_known(producer, {r.topic for r in records}):
            # send() only blocks to fetch metadata; with metadata cached it is a quick
            # append to the accumulator, cheaper inline than a thread hop.
            self._send_all(producer, records, completion)
        else:
            await loop.run_in_executor(self._executor, self._send_all, producer, records, completion)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(completion.done), timeout=self._timeout_s)
        timed_out = BrokerUnavailable(f"Kafka did not acknowledge within {self._timeout_s:g}s")
        outcomes = [o if o is not None else timed_out for o in completion.outcomes]
        if any(isinstance(o, BrokerUnavailable) for o in outcomes):
            await self._retire(producer)
        return outcomes

    async def _retire(self, producer: KafkaProducer) -> None:
        """Replace a producer that failed to deliver: the next request connects afresh.

        After a broker restart under load, kafka-python's idempotent producer, whose
        records expired while the broker was down, never delivered again (every request
        answered 503 while readyz said 200; tests/test_fault_broker.py). A new producer
        starts a new idempotent session. Its unsent records are dropped: their callers
        were told 503, and must not find them written much later.
        """
        async with self._connect_lock:
            if self._producer is not producer:
                return  # already replaced by a concurrent request
            self._producer = None
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _close_quietly, producer)

    async def ready(self, timeout_s: float = 3.0) -> bool:
        """True when the producer is connected and a broker answers a metadata request now."""
        try:
            await self._ensure_producer()
        except BrokerUnavailable:
            return False
        loop = asyncio.get_running_loop()
        # A fresh admin connection proves a broker answers now; the producer's cached
        # metadata would not. Off the loop, on the default pool, so a slow probe never
        # holds up sends.
        return await loop.run_in_executor(None, broker_answers, self._bootstrap, timeout_s, self._security)


def _close_quietly(producer: KafkaProducer) -> None:
    try:
        producer.close(timeout=0)
    except KafkaError as exc:
        log.warning("closing a failed producer: %s", exc)


def _metadata_known(producer: KafkaProducer, topics: set[str]) -> bool:
    # kafka-python has no public "would send() block?"; its cluster metadata answers it.
    metadata = producer._metadata
    return all(metadata.partitions_for_topic(topic) is not None for topic in topics)


def _on_success(completion: _Completion, index: int, metadata: object) -> None:
    completion.settle(
        index,
        Delivered(partition=getattr(metadata, "partition", -1), offset=getattr(metadata, "offset", -1)),
    )


def _on_failure(completion: _Completion, index: int, exc: BaseException) -> None:
    completion.settle(index, BrokerUnavailable(f"Kafka rejected the write: {exc}"))
