"""`caresignal scorer --replay`: forget derived state and rebuild it from the event topic.

Everything the scorer holds is derived: its consumer group offsets, its changelog and
repartition topics and its local stores. Removing them makes the next start read the
event topic from the beginning; change ids are deterministic, so the level changes it
publishes again carry the ids they had the first time and consumers can drop them.
"""

import shutil
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import GroupIdNotFoundError, KafkaError, NonEmptyGroupError

from services.broker.settings import KafkaSettings
from services.scoring.settings import ScoringSettings
from services.scoring.worker import REPARTITION_NAME


class ReplayError(RuntimeError):
    pass


def reset_derived_state(settings: ScoringSettings, kafka: KafkaSettings) -> list[str]:
    admin = KafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers, client_id="caresignal-replay", **kafka.security.kafka_python()
    )
    removed: list[str] = []
    try:
        for result in admin.delete_groups([settings.app_id]).values():
            # kafka-python answers {group: "OK" or the error class name}.
            if result == NonEmptyGroupError.__name__:
                raise ReplayError(f"the scorer {settings.app_id!r} is still running: stop it first")
            if result == "OK":
                removed.append(f"consumer group {settings.app_id}")
            elif result != GroupIdNotFoundError.__name__:
                raise ReplayError(f"could not delete consumer group {settings.app_id!r}: {result}")
        # Changelogs are named after the app; faust names repartition topics after the
        # agent and its source topic.
        repartition = f"organisations-{kafka.topics.risk_changes}-{REPARTITION_NAME}-repartition"
        derived = sorted(t for t in admin.list_topics() if t.startswith(f"{settings.app_id}-") or t == repartition)
        if derived:
            admin.delete_topics(derived)
            _wait_deleted(admin, set(derived))
            removed.extend(f"topic {t}" for t in derived)
    except KafkaError as exc:
        raise ReplayError(f"could not reset the scorer's state in Kafka: {exc}") from exc
    finally:
        admin.close()
    if settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
        removed.append(f"local store {settings.data_dir}")
    return removed


def _wait_deleted(admin: KafkaAdminClient, topics: set[str], timeout_s: float = 60.0) -> None:
    """Until the broker no longer lists them: the replay writes new changelogs of the same
    names next, and a record sent to a topic still being deleted would be lost with it."""
    deadline = time.monotonic() + timeout_s
    while left := topics & set(admin.list_topics()):
        if time.monotonic() > deadline:
            raise ReplayError(f"the broker still lists {sorted(left)} {timeout_s:.0f} s after deleting them")
        time.sleep(0.2)


def history_end_offsets(kafka: KafkaSettings) -> dict[int, int]:
    """The event topic's end offsets per partition: where the history a replay re-reads ends."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        **kafka.security.kafka_python(),
    )
    try:
        partitions = [
            TopicPartition(kafka.topics.events, p) for p in consumer.partitions_for_topic(kafka.topics.events) or ()
        ]
        ends = consumer.end_offsets(partitions) if partitions else {}
    except KafkaError as exc:
        raise ReplayError(f"could not read the event topic's end offsets: {exc}") from exc
    finally:
        consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}
