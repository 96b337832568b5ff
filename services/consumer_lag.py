"""Consumer lag per topic, from a consumer's own offsets: what the lag alerting rules read.

Each service reports the lag of the partitions it is assigned now, summed per topic role
("events", "risk_changes", ...): roles, not topic names, so that rules and dashboards hold
for any topic prefix, and sums, not partitions, so that a partition moved to another
worker by a rebalance leaves no stale series behind.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class TopicPartitionLike(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


TP = TypeVar("TP", bound=TopicPartitionLike)


def lag_by_role(
    assigned: Iterable[TP],
    end_offsets: Mapping[TP, int | None],
    positions: Mapping[TP, int | None],
    roles: Mapping[str, str],
) -> dict[str, int]:
    """Records not yet consumed, per role of `roles` (topic name -> role).

    `end_offsets` is the offset the next record written will get, `positions` the offset
    of the next record this consumer will process. A partition whose end or position is
    not known yet counts 0; every role of `roles` is present, 0 when nothing is assigned.
    """
    lags = dict.fromkeys(roles.values(), 0)
    for tp in assigned:
        role = roles.get(tp.topic)
        end = end_offsets.get(tp)
        position = positions.get(tp)
        if role is None or end is None or position is None:
            continue
        lags[role] += max(0, end - position)
    return lags


LagSource = Callable[[], Mapping[str, int]]


class ConsumerLagCollector(Collector):
    """A `<name>{topic="<role>"}` gauge read from `source` at scrape time."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        # Until the service's consumer exists there is nothing to report.
        self.source: LagSource = dict

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=["topic"])
        for role, lag in sorted(self.source().items()):
            family.add_metric([role], lag)
        yield family
