"""Prometheus metrics for ingest, on a registry of the app's own (no global state)."""

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "caresignal_ingest_events",
            "Events received, by event type and outcome (accepted, rejected_<status>).",
            ["event_type", "outcome"],
            registry=self.registry,
        )
        self.requests = Counter(
            "caresignal_ingest_requests",
            "HTTP requests by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "caresignal_ingest_produce_seconds",
            "Time from handing records to the producer to Kafka's acknowledgement of all of them.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "caresignal_ingest_batch_size",
            "Events per batch request.",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=self.registry,
        )
        self.directory_records = Counter(
            "caresignal_ingest_directory_records",
            "Directory records received, by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )


class RequestCounter:
    """Counts requests by route template and status (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The route template, not the raw path: IDs in paths would explode cardinality.
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(template, str(status)).inc()
