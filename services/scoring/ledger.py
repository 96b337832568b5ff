"""What the scorer has already published, read back from the risk-change topic."""

import asyncio
import json
import logging

from kafka import KafkaConsumer, TopicPartition

from services.broker.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


class PublishedLedger:
    """The latest sequence published per location or organisation, read from the
    risk-change topic itself.

    The topic is the truth about what was published: after a crash the worker replays
    events whose changes may already be on it (acknowledged, but the state recording
    them not yet written), and checks here before publishing one again.
    """

    def __init__(self, bootstrap_servers: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._bootstrap = bootstrap_servers
        self._security = security
        self._topic = topic
        self._latest: dict[str, int] = {}
        self._loaded = False
        self._lock = asyncio.Lock()

    @staticmethod
    def _split(change_id: str) -> tuple[str, int]:
        subject, _, seq = change_id.rpartition(":")
        return subject, int(seq)

    def _read_topic(self) -> dict[str, int]:
        consumer = KafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None, **self._security.kafka_python()
        )
        latest: dict[str, int] = {}
        try:
            partitions = [
                TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or [])
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        try:
                            subject, seq = self._split(json.loads(record.value)["change_id"])
                        except (ValueError, KeyError, TypeError):
                            continue  # not ours to judge here; the roll-up dead-letters it
                        latest[subject] = max(seq, latest.get(subject, 0))
        finally:
            consumer.close()
        return latest

    async def load(self) -> None:
        async with self._lock:
            if not self._loaded:
                loop = asyncio.get_running_loop()
                self._latest = await loop.run_in_executor(None, self._read_topic)
                self._loaded = True
                log.info("published ledger: %d subjects read from %s", len(self._latest), self._topic)

    def already_published(self, change_id: str) -> bool:
        subject, seq = self._split(change_id)
        return self._latest.get(subject, 0) >= seq

    def record(self, change_id: str) -> None:
        subject, seq = self._split(change_id)
        self._latest[subject] = max(seq, self._latest.get(subject, 0))
