"""What the alert consumer's group membership reports, step by step (the real broker's side
is tests/test_alerts_consumer_start.py; here the broker's answers are given)."""

from collections.abc import Set

from kafka import TopicPartition

from services.alerts.risk_change_group import TOPIC_CHECK_S, RiskChangeGroup

TOPIC = "t1.caresignal.risk-changes.v1"


class Broker:
    """Stands in for a KafkaConsumer: the topic's partitions as the broker lists them, and
    what the group was asked to do, in order."""

    def __init__(self) -> None:
        self.partitions: set[int] = set()
        self.calls: list[str] = []

    def partitions_for_topic(self, topic: str) -> set[int]:
        assert topic == TOPIC
        self.calls.append("partitions_for_topic")
        return set(self.partitions)

    def subscribe(self, topics: list[str], listener: object) -> None:
        assert topics == [TOPIC]
        self.calls.append("subscribe")

    def topics(self) -> Set[str]:
        self.calls.append("topics")
        return {TOPIC} if self.partitions else set()

    def unsubscribe(self) -> None:
        self.calls.append("unsubscribe")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def group_on(broker: Broker, clock: Clock) -> RiskChangeGroup:
    return RiskChangeGroup(broker, TOPIC, "caresignal-alerts", clock=clock)  # type: ignore[arg-type]


def test_not_ready_until_the_topic_is_listed_then_subscribed_with_fresh_metadata() -> None:
    broker, clock = Broker(), Clock()
    group = group_on(broker, clock)
    assert group.problem is not None and "looking up" in group.problem  # never ready before it has looked

    group.step()
    assert not group.subscribed
    assert group.problem is not None and f"risk-change topic {TOPIC} not found" in group.problem
    group.step()
    assert broker.calls == ["partitions_for_topic"], "asks the broker at most every TOPIC_CHECK_S"

    broker.partitions = set(range(6))
    clock.now += TOPIC_CHECK_S
    group.step()
    assert group.subscribed and group.problem is None
    # Metadata fetched after subscribing, so that the first rebalance is made from it.
    assert broker.calls[-3:] == ["partitions_for_topic", "subscribe", "topics"]


def test_an_empty_assignment_is_named_and_a_vanished_topic_leaves_the_group() -> None:
    broker, clock = Broker(), Clock()
    broker.partitions = set(range(6))
    group = group_on(broker, clock)
    group.step()
    assert group.subscribed and group.problem is None  # joining: the group's answer is coming

    group.membership.on_partitions_assigned({TopicPartition(TOPIC, p) for p in range(6)})
    group.step()
    assert group.problem is None

    group.membership.on_partitions_revoked(set())
    group.membership.on_partitions_assigned(set())
    clock.now += TOPIC_CHECK_S
    group.step()
    assert group.problem == (
        f"none of the 6 partitions of {TOPIC} is assigned to this instance (consumer group caresignal-alerts)"
    )

    broker.partitions = set()
    clock.now += TOPIC_CHECK_S
    group.step()
    assert not group.subscribed and broker.calls[-1] == "unsubscribe"
    assert group.problem is not None and "not found" in group.problem

    broker.partitions = set(range(6))
    clock.now += TOPIC_CHECK_S
    group.step()
    assert group.subscribed and group.problem is None
    assert group.membership.assigned is None, "a new membership: nothing assigned until the group answers"
