"""The ingest FastAPI application and its entrypoint."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import TypeAdapter

from schemas.directory import Authority, Location, Placement
from schemas.events import Event, EventParser
from services.apidocs import install_docs
from services.broker.settings import KafkaSettings
from services.ingest import batch, directory, events
from services.ingest.auth import ApiKeyRegistry
from services.ingest.context import IngestContext, IngestDep
from services.ingest.errors import install_handlers
from services.ingest.limits import BodySizeLimit
from services.ingest.metrics import IngestMetrics, RequestCounter
from services.ingest.publisher import KafkaPublisher
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


def create_app(
    settings: IngestSettings,
    kafka: KafkaSettings,
    api_keys: ApiKeyRegistry,
    metrics: IngestMetrics | None = None,
) -> FastAPI:
    publisher = KafkaPublisher(
        kafka.bootstrap_servers, settings.produce_timeout_s, settings.linger_ms, security=kafka.security
    )
    context = IngestContext(
        settings=settings,
        topics=kafka.topics,
        parser=EventParser(future_tolerance=timedelta(seconds=settings.future_tolerance_s)),
        publisher=publisher,
        metrics=metrics or IngestMetrics(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await publisher.close()

    app = FastAPI(
        title="CareSignal ingest",
        version="1.0.0",
        description="Takes events and directory records from upstream systems and stores them durably in Kafka.",
        lifespan=lifespan,
        # Operations use Prometheus (/metrics); FastAPI's OpenTelemetry hooks cost ~5% per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.context = context
    app.state.api_keys = api_keys
    install_handlers(app, settings.retry_after_s)
    app.include_router(events.router)
    app.include_router(batch.router)
    app.include_router(directory.router)

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Kafka answers: events can be accepted")
    async def readyz(context: IngestDep) -> JSONResponse:
        if await context.publisher.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "kafka unreachable"}, status_code=503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics_endpoint(context: IngestDep) -> Response:
        return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestCounter, metrics=context.metrics)
    app.add_middleware(
        BodySizeLimit,
        limits={"/v1/events/batch": settings.max_batch_bytes},
        default=settings.max_event_bytes,
    )
    _document_contracts(app)
    return app


def _document_contracts(app: FastAPI) -> None:
    """Put the event and directory schemas into the OpenAPI document's components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        template = "#/components/schemas/{model}"
        event_schema = TypeAdapter(Event).json_schema(ref_template=template)
        components.update(event_schema.pop("$defs", {}))
        components["Event"] = event_schema
        for model in (Location, Placement, Authority):
            model_schema = model.model_json_schema(ref_template=template)
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def serve(settings: IngestSettings, kafka: KafkaSettings) -> None:
    api_keys = ApiKeyRegistry.watch(settings.api_keys_file)
    app = create_app(settings, kafka, api_keys)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
