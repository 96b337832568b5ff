"""The alert service's place in its consumer group, and why it is not reading when it is not.

The group is joined only once the broker lists the risk-change topic, with the topic's
partitions already in the consumer's metadata. kafka-python (3.0.12) sends its JoinGroup
as soon as the coordinator is found, while the metadata request that `subscribe` asks for
waits out `retry_backoff_ms` after the bootstrap's; the local broker answers a new group's
JoinGroup at once (`group.initial.rebalance.delay.ms=0`), so the leader ran the assignor
on metadata without the topic ("No partition metadata for topic ...") and gave every
member nothing. It rebalances again only when a later metadata update differs from what
it assigned from: for a topic that exists that is ~0.1 s later, but a topic that is
missing (not created yet, deleted) leaves the group with nothing to read, and the
service said ready all along. See docs/reliability.md.

While the topic is missing, the consumer is not subscribed: subscribed to a missing topic,
kafka-python asks the broker again every 100 ms and logs an error each time.
"""

import logging
import threading
import time
from collections.abc import Callable, Set

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

log = logging.getLogger("caresignal.alerts.consumer")

# How often a consumer with nothing to read asks the broker about its topic again: each
# ask for a topic the consumer's metadata does not hold fetches every topic's metadata.
TOPIC_CHECK_S = 2.0


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """What the group last gave this consumer. kafka-python calls these on its IO thread."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._lock = threading.Lock()
        self._assigned: frozenset[TopicPartition] | None = None
        self.assignments = 0

    @property
    def assigned(self) -> frozenset[TopicPartition] | None:
        """The partitions of the last completed rebalance; None while (re)joining."""
        with self._lock:
            return self._assigned

    def on_partitions_revoked(self, revoked: Set[TopicPartition]) -> None:
        with self._lock:
            self._assigned = None

    def on_partitions_assigned(self, assigned: Set[TopicPartition]) -> None:
        with self._lock:
            self._assigned = frozenset(assigned)
            self.assignments += 1
        numbers = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        # kafka-python's own log of this is below the level the service shows.
        log.info("group assigned %d partition(s) of %s: %s", len(numbers), self.topic, numbers)


class RiskChangeGroup:
    """Subscribes `consumer` to `topic` once the topic exists and keeps `problem` current.

    `step()` is called from the consumer's thread between polls (kafka-python's consumer
    is not thread-safe); `problem` is read from any thread (None: reading, or joining).
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        topic: str,
        group_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.group_id = group_id
        self.clock = clock
        self.membership = Membership(topic)
        self.subscribed = False
        self.problem: str | None = f"consumer: looking up risk-change topic {topic}"
        self._checked_at: float | None = None

    def _missing(self) -> str:
        return f"risk-change topic {self.topic} not found on the broker (create it: `caresignal topics create`)"

    def _check_due(self) -> bool:
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < TOPIC_CHECK_S:
            return False
        self._checked_at = now
        return True

    def step(self) -> None:
        if not self.subscribed:
            if self._check_due():
                self._subscribe_if_topic_exists()
            return
        assigned = self.membership.assigned
        if assigned is None or assigned:
            # Joining: the group's answer is coming (a killed predecessor's session may
            # hold it up to the session timeout). Assigned: reading.
            self.problem = None
            self._checked_at = None
            return
        if not self._check_due():
            return
        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            log.warning("%s; leaving the group until it exists", self._missing())
            self.consumer.unsubscribe()
            self.subscribed = False
            self.problem = self._missing()
            return
        # A completed rebalance gave this instance nothing: more instances than
        # partitions, or a leader whose metadata lacked the topic (it rebalances again
        # when its metadata changes).
        self.problem = (
            f"none of the {len(partitions)} partitions of {self.topic} is assigned to this "
            f"instance (consumer group {self.group_id})"
        )

    def _subscribe_if_topic_exists(self) -> None:
        if not self.consumer.partitions_for_topic(self.topic):
            if self.problem != self._missing():
                log.warning("%s; waiting for it", self._missing())
            self.problem = self._missing()
            return
        self.membership = Membership(self.topic)
        self.consumer.subscribe([self.topic], listener=self.membership)
        # A fresh metadata fetch now, with the topic subscribed: the coordinator takes the
        # snapshot it compares later metadata against from each fetch (not from
        # `subscribe`), so the first rebalance is made from, and remembered as, metadata
        # that lists the topic's partitions; otherwise the next refresh would differ from
        # the remembered (empty) snapshot and trigger a second rebalance.
        self.consumer.topics()
        self.subscribed = True
        self.problem = None
        self._checked_at = None
        log.info("risk-change topic %s found; joining consumer group %s", self.topic, self.group_id)
