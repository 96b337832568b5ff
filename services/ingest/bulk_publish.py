"""Bulk loads straight to Kafka (directory imports, the regulator's ratings): every record
acknowledged by the broker, or an error, before the command reports a count."""

from collections.abc import Sequence

from kafka import KafkaProducer

from services.broker.connection_check import require_connection
from services.broker.security import PLAINTEXT, KafkaSecurity
from services.ingest.publisher import OutRecord


def send_all(
    records: Sequence[OutRecord],
    bootstrap_servers: str,
    client_id: str,
    timeout_s: float,
    security: KafkaSecurity = PLAINTEXT,
) -> int:
    # A refused login is reported as such, at once, rather than as a timeout.
    require_connection(bootstrap_servers, security, timeout_s=min(timeout_s, 10.0))
    # kafka-python's default partitioner is murmur2 of the key: the partition ingest and the
    # scorer expect for a location.
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        client_id=client_id,
        linger_ms=20,
        **security.kafka_python(),
    )
    try:
        futures = [producer.send(r.topic, key=r.key, value=r.value, headers=list(r.headers)) for r in records]
        producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)
    finally:
        producer.close(timeout=10)
    return len(records)
