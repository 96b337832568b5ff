"""The scorer's entry into its consumer group when the broker does not list its topics yet
(services/scoring/membership.py); here the broker's metadata is given. The real broker's
side: tests/test_scoring_membership_live.py."""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocol, ConsumerProtocolMemberMetadata
from aiokafka.errors import GroupAuthorizationFailedError
from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from services.broker.settings import KafkaSettings
from services.scoring.membership import (
    NO_METADATA,
    CompleteAssignor,
    GroupStatus,
    missing_problem,
    missing_topics,
    read_coordination_error,
    wait_for_topics,
)
from services.scoring.policy import DEFAULT_POLICY, load_policy
from services.scoring.settings import ScoringSettings
from services.scoring.worker import Scorer


class Cluster:
    """The leader's metadata: the topics it lists, with their partition counts."""

    def __init__(self, partitions: Mapping[str, int]) -> None:
        self.partitions = dict(partitions)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.partitions.get(topic)
        return set(range(count)) if count else None


@pytest.fixture
def scorer(tmp_path: Path) -> Iterator[Scorer]:
    settings = ScoringSettings(store="memory://", data_dir=tmp_path, app_id="membership-test")
    yield Scorer(settings, KafkaSettings(topic_prefix="t1"), load_policy(DEFAULT_POLICY))


def subscription(scorer: Scorer) -> list[str]:
    return sorted(
        {scorer.topics.events, scorer.topics.locations, scorer.topics.risk_changes} | scorer.app.tables.changelog_topics
    )


def members(scorer: Scorer, count: int) -> dict[str, ConsumerProtocolMemberMetadata]:
    topics = subscription(scorer)
    empty = ClientAssignment(actives={}, standbys={})
    return {
        f"member-{i}": ConsumerProtocolMemberMetadata(
            0,
            topics,
            ClientMetadata(assignment=empty, url=f"http://127.0.0.1:{6066 + i}", changelog_distribution={}).dumps(),
        )
        for i in range(count)
    }


def assigned(assignment: Any) -> list[tuple[str, list[int]]]:
    decoded = ConsumerProtocol.ASSIGNMENT.decode(assignment.encode())
    return [(topic, partitions) for topic, partitions in decoded.assignment if partitions]


def global_changelog(scorer: Scorer) -> str:
    return str(scorer.peers.changelog_topic.get_topic_name())


def test_faust_assignor_fails_when_a_global_tables_changelog_is_not_listed(scorer: Scorer) -> None:
    # The cause: the leader's exception, which aiokafka hands to a reader Faust never runs.
    listed = {topic: 6 for topic in subscription(scorer) if topic != global_changelog(scorer)}
    with pytest.raises(KeyError):
        PartitionAssignor(scorer.app).assign(Cluster(listed), members(scorer, 1))


@pytest.mark.parametrize("unlisted", ["global changelog", "events", "every topic"])
def test_a_leader_missing_a_topic_assigns_nothing_to_anyone(scorer: Scorer, unlisted: str) -> None:
    gone = {
        "global changelog": {global_changelog(scorer)},
        "events": {scorer.topics.events},
        "every topic": set(subscription(scorer)),
    }[unlisted]
    listed = {topic: 6 for topic in subscription(scorer) if topic not in gone}
    result = CompleteAssignor(scorer.app).assign(Cluster(listed), members(scorer, 2))
    assert set(result) == {"member-0", "member-1"}
    assert all(assigned(a) == [] for a in result.values())


def test_a_leader_listing_every_topic_assigns_as_faust_does(scorer: Scorer) -> None:
    listed = Cluster({topic: 6 for topic in subscription(scorer)})
    ours = CompleteAssignor(scorer.app).assign(listed, members(scorer, 2))
    faust = PartitionAssignor(scorer.app).assign(listed, members(scorer, 2))
    assert {m: assigned(a) for m, a in ours.items()} == {m: assigned(a) for m, a in faust.items()}
    events = {m: dict(assigned(a)).get(scorer.topics.events, []) for m, a in ours.items()}
    assert sorted(events["member-0"] + events["member-1"]) == list(range(6))
    # Every worker reads the whole global table: an assignment is never empty when complete.
    assert all(set(dict(assigned(a))[global_changelog(scorer)]) == set(range(6)) for a in ours.values())


def test_missing_topics_and_the_problem_named() -> None:
    assert missing_topics(["b", "a", "c"], {"a": 6, "b": 0}) == ["b", "c"]
    assert missing_problem([]) is None
    problem = missing_problem(["t1.events", "t1.locations"])
    assert problem is not None and "2 topic(s)" in problem and "t1.events, t1.locations" in problem
    many = missing_problem([f"topic-{i}" for i in range(7)])
    assert many is not None and "topic-3 and 3 more" in many and "topic-4" not in many


class Metadata:
    """The broker's answers to successive metadata requests (None: no broker answered)."""

    def __init__(self, *answers: Mapping[str, int] | None) -> None:
        self.answers = list(answers)
        self.asked: list[frozenset[str]] = []

    async def __call__(self, topics: frozenset[str]) -> Mapping[str, int] | None:
        self.asked.append(topics)
        return self.answers.pop(0)


async def test_waits_until_every_topic_is_listed_and_says_why_meanwhile() -> None:
    status = GroupStatus()
    seen: list[str | None] = []

    async def sleep(seconds: float) -> None:
        seen.append(status.problem())

    metadata = Metadata(None, {"events": 6}, {"events": 6, "changelog": 0}, {"events": 6, "changelog": 6})
    await wait_for_topics(["events", "changelog"], metadata, status, sleep=sleep)
    assert metadata.asked == [frozenset({"events", "changelog"})] * 4
    assert seen[0] == NO_METADATA
    assert seen[1] == seen[2] == missing_problem(["changelog"])
    assert status.problem() is None and status.waiting is None


async def test_listed_at_once_joins_without_waiting() -> None:
    status = GroupStatus()

    async def sleep(seconds: float) -> None:
        raise AssertionError("no wait when every topic is listed")

    await wait_for_topics(["events"], Metadata({"events": 6}), status, sleep=sleep)
    assert status.problem() is None


class Coordinator:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.checked = 0

    def check_errors(self) -> None:
        self.checked += 1
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class Consumer:
    def __init__(self, error: Exception | None) -> None:
        self._coordinator = Coordinator(error)


def test_an_error_the_coordinator_hands_over_is_read_and_shown() -> None:
    status = GroupStatus()
    consumer: Any = Consumer(GroupAuthorizationFailedError("scorer"))
    read_coordination_error(consumer, status)
    assert consumer._coordinator.checked == 1
    assert status.problem() is not None and "GroupAuthorizationFailedError" in status.problem()  # type: ignore[operator]
    read_coordination_error(consumer, status)  # nothing new: still shown until the next assignment
    assert status.coordination_error is not None
    quiet = GroupStatus()
    read_coordination_error(Consumer(None), quiet)  # type: ignore[arg-type]
    assert quiet.problem() is None
