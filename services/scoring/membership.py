"""The scorer's place in its consumer group, and why it is not scoring when it is not.

A scorer started at once after its broker (the broker still loading its logs, or just
slow) never became ready: the broker answered, but its metadata listed none of the
topics the worker reads, the changelogs Faust had just created included, for tens of
seconds. The group leader then assigned from that metadata. Faust's assignor skips a
missing topic ("Ignoring missing topic") but then looks up the partition count of each
global table's changelog among the topics it kept, a KeyError
(faust/assignor/partition_assignor.py, `_global_table_standby_assignments`).
aiokafka turns an assignor's exception into a KafkaError (group_coordinator.py,
`_on_join_leader`), and its coordination routine hands that to the user and waits until
the user reads it (`_push_error_to_user`), which only `AIOKafkaConsumer.getmany()` and
its like do. Faust fetches through the consumer's fetcher instead, so nothing read it:
the group never synced, nothing was logged, /readyz said "recovering" for ever.

Three things here, each enough to end that hang and each for a case the others miss:
- the consumer subscribes (joins the group) only once the broker lists every topic it
  reads, fetched into the consumer's own metadata; meanwhile /readyz names them
  (as the alert service's `RiskChangeGroup` does for its one topic);
- a leader whose metadata lacks a subscribed topic assigns nothing rather than part of
  the work: a table whose changelog was skipped would score on empty state. aiokafka
  rebalances when its metadata next lists the topic (the consumer refreshes it every
  10 s, see `worker.py`);
- an error the coordinator hands over is read, logged and shown on /readyz, and the
  coordinator goes on (it retries the join).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment
from faust.assignor.partition_assignor import MemberAssignmentMapping, MemberMetadataMapping

log = logging.getLogger(__name__)

# How often the broker is asked again about topics it did not list.
TOPIC_CHECK_S = 1.0
# How often the consumer's thread looks for an error the group coordinator handed over.
COORDINATION_CHECK_S = 1.0
SHOWN_TOPICS = 4

PartitionCounts = Callable[[frozenset[str]], Awaitable[Mapping[str, int] | None]]


@dataclass
class GroupStatus:
    """Why the worker is not in its group yet; written by the consumer's side, read by
    /readyz (plain attribute writes: the web view may run on another thread)."""

    waiting: str | None = None
    coordination_error: str | None = None

    def problem(self) -> str | None:
        return self.waiting or self.coordination_error


def missing_topics(wanted: Iterable[str], partitions: Mapping[str, int]) -> list[str]:
    """The wanted topics of which the metadata lists no partition, sorted."""
    return sorted(topic for topic in set(wanted) if partitions.get(topic, 0) <= 0)


def missing_problem(missing: Sequence[str]) -> str | None:
    if not missing:
        return None
    shown = ", ".join(missing[:SHOWN_TOPICS])
    more = f" and {len(missing) - SHOWN_TOPICS} more" if len(missing) > SHOWN_TOPICS else ""
    return (
        f"consumer: waiting for the broker to list {len(missing)} topic(s) before joining the "
        f"consumer group: {shown}{more} (the app's own: `caresignal topics create`)"
    )


NO_METADATA = "consumer: the broker did not answer a metadata request; asking again"


async def wait_for_topics(
    topics: Iterable[str],
    partitions: PartitionCounts,
    status: GroupStatus,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    interval_s: float = TOPIC_CHECK_S,
) -> None:
    """Return once `partitions` lists every topic; until then `status.waiting` says why."""
    wanted = frozenset(topics)
    while True:
        counts = await partitions(wanted)
        problem = NO_METADATA if counts is None else missing_problem(missing_topics(wanted, counts))
        if problem is None:
            if status.waiting is not None:
                log.info("the broker lists all %d topics; joining the consumer group", len(wanted))
            status.waiting = None
            return
        if problem != status.waiting:
            log.warning("%s", problem)
        status.waiting = problem
        await sleep(interval_s)


async def listed_partitions(consumer: AIOKafkaConsumer, topics: frozenset[str]) -> Mapping[str, int] | None:
    """The partition counts the broker lists now (None: no broker answered). Once it lists
    every topic, they are fetched into the consumer's own metadata, which its group leader
    assigns from. Runs on the consumer's event loop."""
    client: Any = consumer._client
    try:
        # Every topic's metadata: asked for by name, each missing one is logged as an error.
        everything: ClusterMetadata = await client.fetch_all_metadata()
    except KafkaError:
        return None
    counts = {topic: len(everything.partitions_for_topic(topic) or ()) for topic in topics}
    if missing_topics(topics, counts):
        return counts
    client.set_topics(topics)
    if not await client.force_metadata_update():
        return None
    return {topic: len(consumer.partitions_for_topic(topic) or ()) for topic in topics}


def read_coordination_error(consumer: AIOKafkaConsumer, status: GroupStatus) -> None:
    """Take the error the coordinator handed over, if any, which lets it go on (and show
    it until the next assignment). Runs on the consumer's event loop."""
    try:
        consumer._coordinator.check_errors()
    except KafkaError as exc:
        problem = f"consumer group coordination failed: {exc!r}; retrying"
        if problem != status.coordination_error:
            log.error("%s", problem)
        status.coordination_error = problem


class CompleteAssignor(PartitionAssignor):
    """Faust's assignor, but a leader whose metadata lacks a subscribed topic assigns
    nothing to any member (see the module's docstring)."""

    def assign(self, cluster: ClusterMetadata, member_metadata: MemberMetadataMapping) -> MemberAssignmentMapping:
        counts = {
            topic: len(cluster.partitions_for_topic(topic) or ())
            for metadata in member_metadata.values()
            for topic in metadata.subscription
        }
        missing = missing_topics(counts, counts)
        if not missing:
            return super().assign(cluster, member_metadata)
        log.warning(
            "group leader: the metadata lists no partitions of %s; assigning nothing until it does "
            "(the group rebalances when the metadata changes)",
            ", ".join(missing),
        )
        members = {member: self._get_client_metadata(metadata) for member, metadata in member_metadata.items()}
        self._update_member_urls(members)
        nothing = {member: ClientAssignment(actives={}, standbys={}) for member in members}
        return self._protocol_assignments(nothing, {}, {}, {})
