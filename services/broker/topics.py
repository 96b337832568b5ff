"""Idempotent topic provisioning with kafka-python's admin client."""

from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import SPECS, Topics
from services.broker.connection_check import require_connection
from services.broker.security import PLAINTEXT, KafkaSecurity


@dataclass(frozen=True)
class ProvisionResult:
    created: list[str]
    existing: list[str]


def topic_config(role: str) -> dict[str, str]:
    spec = SPECS[role]  # type: ignore[index]
    config: dict[str, str] = {}
    if spec.compacted:
        config["cleanup.policy"] = "compact"
        # Directory topics are small; compact soon so a restart reads little history.
        config["min.cleanable.dirty.ratio"] = "0.1"
        config["segment.ms"] = str(6 * 3600 * 1000)
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    return config


def create_topics(
    bootstrap_servers: str,
    topics: Topics,
    replication: int = 1,
    timeout_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> ProvisionResult:
    # A refused login must be reported as such, and now, not as a timeout later.
    require_connection(bootstrap_servers, security, timeout_s=min(timeout_s, 10.0))
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="caresignal-topics",
        request_timeout_ms=int(timeout_s * 1000),
        **security.kafka_python(),
    )
    try:
        existing = set(admin.list_topics())
        wanted = topics.by_role()
        missing = [
            NewTopic(
                name=name,
                num_partitions=SPECS[role].partitions,
                replication_factor=replication,
                topic_configs=topic_config(role),
            )
            for role, name in wanted.items()
            if name not in existing
        ]
        created: list[str] = []
        for new_topic in missing:
            try:
                admin.create_topics([new_topic], timeout_ms=int(timeout_s * 1000))
                created.append(new_topic.name)
            except TopicAlreadyExistsError:
                # Another process provisioned it between our list and create: fine.
                pass
        return ProvisionResult(created=created, existing=sorted(n for n in wanted.values() if n not in created))
    finally:
        admin.close()
