"""The scorer's web pages: a location's risk, the risk board, directory records, health."""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.exceptions import SameNode
from faust.types import TopicT
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.risk import Level
from services.scoring.model import LocationState
from services.scoring.policy import Policy
from services.scoring.timeline import from_us
from services.scoring.transport import ScoringApp

if TYPE_CHECKING:
    from services.scoring.worker import Scorer

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
# How long a page waits for the producer to learn a changelog topic's partitions.
METADATA_WAIT_S = 2.0

Handler = Callable[..., Awaitable[Response]]


def unavailable(view: View, detail: str) -> Response:
    return view.json({"detail": detail}, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def not_ready(app: faust.App) -> str | None:
    """Why this worker cannot answer for its partitions now; None: it can."""
    problem = app.group_status.problem() if isinstance(app, ScoringApp) else None
    if problem is not None:
        return problem
    if app.rebalancing:
        return "the consumer group is rebalancing"
    recovery = getattr(app.tables, "recovery", None)
    if recovery is None or not recovery.completed.is_set():
        return "recovering state from changelogs"
    if not app.consumer.assignment():
        # Every worker reads all of the global table's changelog: nothing at all
        # means a leader that assigned nothing (membership.py) until it rebalances.
        return "no partitions assigned to this worker yet"
    return None


async def topic_known(app: faust.App, topic: str) -> bool:
    """Whether the producer's metadata lists the topic, after asking for it.

    faust's router finds a key's worker through the producer's partitioner, which is
    handed the topic's partitions from the producer's cached cluster metadata. Once the
    producer sends to a topic its cache does not list, aiokafka refreshes only the topics
    it has sent to, and the others drop out: aiokafka then calls `list(None)`, a
    TypeError (500). Asking for the topic adds it to the producer's metadata for good.
    """
    producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    if producer.client.cluster.partitions_for_topic(topic) is not None:
        return True
    log.info("producer metadata does not list %s yet; asking the broker", topic)
    try:
        await asyncio.wait_for(producer.partitions_for(topic), timeout=METADATA_WAIT_S)
    except (TimeoutError, KafkaError) as exc:
        log.warning("no metadata for %s: %r", topic, exc)
        return False
    return True


def table_route(app: faust.App, topic: TopicT, match_info: str) -> Callable[[Handler], Handler]:
    """Forwards the request to the worker that consumes the key's partition of `topic`
    (whose tables hold the key), answering 503 with Retry-After, never 500, while that
    worker cannot be found yet.

    Not faust's `app.table_route`: it hashes the key as the table's changelog serializes
    it (JSON, quoted), while a table's rows lie on the partition of the record that wrote
    them, murmur2 of the raw key; with several workers it sent most requests to a worker
    that does not hold the location (404).
    """

    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def get(view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            if not await topic_known(app, topic.get_topic_name()):
                return unavailable(view, f"the worker holding this key is not known yet ({topic.get_topic_name()})")
            try:
                key = request.match_info[match_info].encode()
                return await app.router.route_topic_req(topic, key, view.web, request)
            except SameNode:
                return await handler(view, request, *args, **kwargs)
            except ServiceUnavailable:
                return unavailable(view, "partitions are being assigned")

        return get

    return decorator


def register_views(app: faust.App, scorer: "Scorer") -> None:
    @app.page("/v1/locations/{location_id}/risk")
    class LocationRisk(View):
        # Routed to the worker that holds the location's partition.
        @table_route(app, scorer.events_topic, "location_id")
        async def get(self, request: Request, location_id: str) -> Response:
            state = scorer.state_of(location_id)
            if state is None:
                return self.json({"detail": f"no events scored for location {location_id}"}, status=404)
            return self.json(risk_view(state, scorer.policy))

    @app.page("/v1/directory/locations/{location_id}")
    class DirectoryRecord(View):
        # What the scorer knows of a location: its rates and roll-up depend on it.
        @table_route(app, scorer.locations_topic, "location_id")
        async def get(self, request: Request, location_id: str) -> Response:
            raw = scorer.locations.get(location_id)
            if not raw:
                return self.json({"detail": f"no directory record for location {location_id}"}, status=404)
            return self.json(json.loads(raw))

    @app.page("/v1/locations")
    class RiskBoard(View):
        async def get(self, request: Request) -> Response:
            # Indexing a partition reads its states: before its tables are recovered they
            # are stale, and the agent would then go on from what was indexed.
            problem = not_ready(app)
            if problem is not None:
                return unavailable(self, problem)
            scorer.ensure_index()
            wanted = request.query.get("level")
            if wanted is not None and wanted not in Level.__members__:
                return self.json({"detail": f"level must be one of {list(Level.__members__)}"}, status=422)
            rows = [
                {"location_id": k, "level": v.name}
                for k, v in sorted(scorer.index.levels.items(), key=lambda kv: (-kv[1], kv[0]))
                if wanted is None or v.name == wanted
            ]
            return self.json({"locations": rows, "count": len(rows), "scope": "this worker's partitions"})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(scorer.metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            problem = not_ready(app)
            if problem is not None:
                return self.json({"status": problem}, status=503)
            return self.json({"status": "ready", "policy_version": scorer.policy.version})


def risk_view(state: LocationState, policy: Policy) -> dict[str, Any]:
    spec = policy.spec(state.level)
    recent = state.timeline.items[-20:]
    return {
        "location_id": state.location_id,
        "level": state.level.name,
        "since": state.since.isoformat() if state.since else None,
        "score": state.current.score,
        "evaluated_at": state.evaluated_at.isoformat() if state.evaluated_at else None,
        "policy_version": state.policy_version,
        "reasons": [r.model_dump(mode="json") for r in state.reasons()],
        "actions": [a.model_dump(mode="json") for a in spec.actions] if spec else [],
        "meaning": spec.meaning if spec else None,
        "recent_evidence": [
            {"event_id": e.id, "source": e.source, "type": e.type, "time": from_us(e.time).isoformat()}
            for e in reversed(recent)
        ],
    }
