"""The alert service: its API, and the consumer, delivery and reminder loops it runs."""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import DBAPIError

from schemas.alerts import AlertNotification
from schemas.identifiers import LocationId, OnsCode
from schemas.risk import LevelName
from services.alerts import views
from services.alerts.auth import AlertKeys, OperatorDep, Viewer, ViewerDep
from services.alerts.board.install import install_board
from services.alerts.consumer import ChangeConsumer, ConsumerConfig
from services.alerts.contacts import WEBHOOK_ID_PATTERN, ContactFileWatcher
from services.alerts.current_level import CurrentLevelNotices
from services.alerts.delivery import DeliveryWorker, SmtpConfig, retry_policy
from services.alerts.errors import invalid, refusals
from services.alerts.messages import Links
from services.alerts.metrics import AlertMetrics
from services.alerts.names import NameBook, SourceNamesFile, reference_authorities
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.reminders import Reminders
from services.alerts.routing import ALERT_ID_PATTERN, Directory, endpoints_gone
from services.alerts.settings import AlertsSettings
from services.alerts.store import AlertFilter, AlertNotFound, AlertStore, MuteNotFound
from services.apidocs import install_docs
from services.broker.settings import KafkaSettings

log = logging.getLogger("caresignal.alerts")


@dataclass
class AlertRuntime:
    """Everything the service holds, built once in the entrypoint."""

    settings: AlertsSettings
    store: AlertStore
    keys: AlertKeys
    contacts: ContactFileWatcher
    directory: Directory
    metrics: AlertMetrics
    worker: DeliveryWorker
    reminders: Reminders
    consumer: ChangeConsumer | None
    names: NameBook
    stop_thread: threading.Event = field(default_factory=threading.Event)


def build_runtime(settings: AlertsSettings, kafka: KafkaSettings | None, keys: AlertKeys) -> AlertRuntime:
    store = AlertStore.open(settings.database_url)
    contacts = ContactFileWatcher(settings.contacts_file)
    directory = Directory()
    names = NameBook(directory, reference_authorities(), SourceNamesFile(settings.source_names_file))
    metrics = AlertMetrics()
    metrics.track_store(
        store.outbox_depth, lambda: store.count_deliveries(DeliveryOutcome.dead), store.oldest_pending_created_at
    )
    links = Links(public_url=settings.public_url)
    smtp = SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout_s=settings.http_timeout_s,
    )
    worker = DeliveryWorker(
        store,
        contacts,
        directory,
        metrics,
        links,
        smtp,
        retry_policy(settings.backoff_initial_s, settings.backoff_max_s, settings.retry_window_h),
        max_in_flight=settings.max_in_flight,
        poll_interval_s=settings.poll_interval_s,
        claim_lease_s=settings.claim_lease_s,
        http_timeout_s=settings.http_timeout_s,
        user_agent=settings.user_agent,
        names=names,
    )
    reminders = Reminders(store, contacts, metrics, settings.reminder_interval_h * 3600)
    consumer = None
    if kafka is not None:
        config = ConsumerConfig(
            bootstrap_servers=kafka.bootstrap_servers,
            topics=kafka.topics,
            group_id=settings.consumer_group,
            contacts_poll_s=settings.contacts_poll_s,
            security=kafka.security,
            session_timeout_s=settings.session_timeout_s,
        )
        notices = CurrentLevelNotices(store, contacts, metrics, settings.backfill_settle_s)
        consumer = ChangeConsumer(
            config, store, contacts, directory, metrics, on_new_deliveries=lambda: None, current_level=notices
        )
    else:
        contacts.refresh()
    return AlertRuntime(settings, store, keys, contacts, directory, metrics, worker, reminders, consumer, names)


MAX_MUTE_HOURS = 24 * 90
# The largest id the mutes table can hold on both databases (PostgreSQL's INTEGER).
MAX_MUTE_ID = 2**31 - 1


class MuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location_id: LocationId
    # An authority key mutes for its own authority; an operator names one.
    authority: OnsCode | None = None
    until: Annotated[
        AwareDatetime | None, Field(description=f"in the future, at most {MAX_MUTE_HOURS} hours from now")
    ] = None
    hours: Annotated[float | None, Field(gt=0, le=MAX_MUTE_HOURS)] = None

    @field_validator("until")
    @classmethod
    def _until_expires(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        now = datetime.now(UTC)
        if value <= now:
            raise ValueError("`until` is in the past")
        if value > now + timedelta(hours=MAX_MUTE_HOURS):
            raise ValueError(
                f"`until` is more than {MAX_MUTE_HOURS} hours (90 days) from now: a mute always expires; "
                "mute again when it ends"
            )
        return value

    @model_validator(mode="after")
    def _one_expiry(self) -> "MuteRequest":
        if (self.until is None) == (self.hours is None):
            raise ValueError("give exactly one of `until` and `hours`: a mute always expires")
        return self


class EndpointView(BaseModel):
    endpoint_id: str
    authority: str
    url: str
    min_level: str
    disabled: bool
    disabled_reason: str | None


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    problems: list[str] = []


def _runtime(request: Request) -> AlertRuntime:
    runtime: AlertRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[AlertRuntime, Depends(_runtime)]
AlertIdPath = Annotated[
    str, Path(pattern=ALERT_ID_PATTERN, description="`al_` and 24 hex digits; a reminder adds `-r<n>`")
]
MuteIdPath = Annotated[int, Path(ge=1, le=MAX_MUTE_ID)]
EndpointIdPath = Annotated[str, Path(pattern=WEBHOOK_ID_PATTERN, description="lowercase, as in the contact file")]


def _visible_alert(runtime: AlertRuntime, viewer: Viewer, alert_id: str) -> dict[str, object]:
    try:
        row = runtime.store.get_alert(alert_id)
    except AlertNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert {alert_id}") from None
    if viewer.authority is not None and not runtime.store.received(alert_id, viewer.authority):
        # Not "403": an authority may not even learn that an alert it was not sent exists.
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert {alert_id}")
    return row


def create_app(runtime: AlertRuntime, run_background: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        thread: threading.Thread | None = None
        if run_background:
            consumer = runtime.consumer
            if consumer is not None:

                def wake_from_thread() -> None:
                    loop.call_soon_threadsafe(runtime.worker.wake)

                consumer.on_new_deliveries = wake_from_thread
                thread = threading.Thread(
                    target=consumer.run, args=(runtime.stop_thread,), name="risk-change-consumer", daemon=True
                )
                thread.start()
            tasks.append(asyncio.create_task(runtime.worker.run(stop)))
            tasks.append(asyncio.create_task(_reminder_loop(runtime, stop)))
        try:
            yield
        finally:
            stop.set()
            runtime.stop_thread.set()
            if tasks:
                await asyncio.wait(tasks, timeout=15)
            if thread is not None:
                await asyncio.to_thread(thread.join, 15)
            runtime.store.close()

    app = FastAPI(
        title="CareSignal alerts",
        version="1.0.0",
        description=(
            "Alerts to host and placing authorities when a provider location's risk level changes: "
            "the alert record, who was told what and when, acknowledgements and mutes. "
            "Webhook bodies follow the `AlertNotification` schema and are signed to the "
            "Standard Webhooks specification."
        ),
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.runtime = runtime
    app.state.keys = runtime.keys
    secret = runtime.settings.board_session_secret
    install_board(
        app,
        runtime.store,
        runtime.directory,
        runtime.names,
        runtime.keys,
        runtime.settings.board_node_modules,
        secret.get_secret_value().encode() if secret else None,
    )

    @app.get("/v1/alerts", response_model=list[views.AlertSummary], tags=["alerts"], responses=refusals(401, 403))
    def list_alerts(
        runtime: RuntimeDep,
        viewer: ViewerDep,
        authority: OnsCode | None = None,
        location: LocationId | None = None,
        level: LevelName | None = None,
        state: Literal["open", "acknowledged", "resolved", "history"] | None = None,
        kind: Literal["escalation", "de-escalation", "reminder", "current-level"] | None = None,
        before: AwareDatetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[views.AlertSummary]:
        """Newest first. An authority key sees only alerts its authority received.

        State `history`: a change caused by loading history, recorded and sent to nobody;
        the recipients get one `current-level` notice once the backfill settles."""
        if viewer.authority is not None and authority is not None and authority != viewer.authority:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="an authority key sees only its own alerts")
        flt = AlertFilter(
            authority=authority,
            location_id=location,
            level=level.value if level else None,
            state=state,
            kind=kind,
            limit=limit,
            before=before.timestamp() if before else None,
        )
        rows = runtime.store.list_alerts(flt, viewer.authority)
        return [views.summary(row, viewer.authority) for row in rows]

    @app.get("/v1/alerts/{alert_id}", response_model=views.AlertDetail, tags=["alerts"], responses=refusals(401, 404))
    def get_alert(alert_id: AlertIdPath, runtime: RuntimeDep, viewer: ViewerDep) -> views.AlertDetail:
        """The alert with its full delivery log: who was told what, when, how, with what result."""
        return views.detail(_visible_alert(runtime, viewer, alert_id), viewer.authority)

    @app.post(
        "/v1/alerts/{alert_id}/acknowledge",
        response_model=views.AlertDetail,
        tags=["alerts"],
        responses=refusals(401, 404),
    )
    def acknowledge(alert_id: AlertIdPath, runtime: RuntimeDep, viewer: ViewerDep) -> views.AlertDetail:
        """Records who acknowledged and when; stops reminders. A cleared notice is still sent."""
        _visible_alert(runtime, viewer, alert_id)
        row = runtime.store.acknowledge(alert_id, viewer.actor, time.time())
        return views.detail(row, viewer.authority)

    @app.get("/v1/mutes", response_model=list[views.MuteView], tags=["mutes"], responses=refusals(401))
    def list_mutes(runtime: RuntimeDep, viewer: ViewerDep, include_expired: bool = False) -> list[views.MuteView]:
        rows = runtime.store.list_mutes(viewer.authority, time.time(), include_expired)
        return [views.mute(r) for r in rows]

    @app.post(
        "/v1/mutes", response_model=views.MuteView, status_code=201, tags=["mutes"], responses=refusals(400, 401, 403)
    )
    def add_mute(body: MuteRequest, runtime: RuntimeDep, viewer: ViewerDep) -> views.MuteView:
        """Mute one location for one authority until a time. Alerts are still recorded (state
        `muted` on the delivery); cleared notices are still sent."""
        authority = viewer.authority or body.authority
        if authority is None:
            raise invalid(("body", "authority"), "an operator key must name the `authority` to mute for", "missing")
        if viewer.authority is not None and body.authority not in (None, viewer.authority):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="an authority key mutes only for its own authority")
        now = datetime.now(UTC)
        until = body.until or now + timedelta(hours=body.hours or 0)
        if until <= now:  # hours too small to move the clock, or `until` passed meanwhile
            field = "until" if body.until else "hours"
            raise invalid(("body", field), f"`{field}` gives a mute that has already ended")
        row = runtime.store.add_mute(authority, body.location_id, until.timestamp(), viewer.actor, now.timestamp())
        log.info("mute %s: %s muted %s until %s", row["id"], authority, body.location_id, until.isoformat())
        return views.mute(row)

    @app.delete("/v1/mutes/{mute_id}", response_model=views.MuteView, tags=["mutes"], responses=refusals(401, 404))
    def revoke_mute(mute_id: MuteIdPath, runtime: RuntimeDep, viewer: ViewerDep) -> views.MuteView:
        try:
            row = runtime.store.revoke_mute(mute_id, viewer.authority, viewer.actor, time.time())
        except MuteNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no mute {mute_id}") from None
        return views.mute(row)

    @app.get("/v1/endpoints", response_model=list[EndpointView], tags=["contact points"], responses=refusals(401, 403))
    def list_endpoints(runtime: RuntimeDep, _: OperatorDep) -> list[EndpointView]:
        """Webhook contact points in force (never their secrets), and which are disabled."""
        book = runtime.contacts.book
        gone = endpoints_gone(runtime.store.disabled_endpoints(), book)
        return [
            EndpointView(
                endpoint_id=hook.endpoint_id,
                authority=hook.authority,
                url=hook.url,
                min_level=hook.min_level.name,
                disabled=hook.endpoint_id in gone,
                disabled_reason="answered 410 Gone" if hook.endpoint_id in gone else None,
            )
            for hooks in book.webhooks.values()
            for hook in hooks
        ]

    @app.post("/v1/endpoints/{endpoint_id}/enable", tags=["contact points"], responses=refusals(401, 403, 404))
    def enable_endpoint(endpoint_id: EndpointIdPath, runtime: RuntimeDep, viewer: OperatorDep) -> dict[str, str]:
        """Use an endpoint again after a 410 (changing its URL in the contact file also does)."""
        if not runtime.store.enable_endpoint(endpoint_id, viewer.actor, time.time()):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"endpoint {endpoint_id} is not disabled")
        return {"endpoint_id": endpoint_id, "status": "enabled"}

    @app.get("/v1/schema/webhook", tags=["contact points"], summary="JSON Schema of every webhook body")
    def webhook_schema() -> JSONResponse:
        return JSONResponse(AlertNotification.model_json_schema())

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Database answers, directory loaded, risk-change topic found and consumed",
        responses={200: {"model": Readiness}, 503: {"model": Readiness, "description": "Not ready, and why"}},
    )
    def readyz(runtime: RuntimeDep) -> JSONResponse:
        problems: list[str] = []
        try:
            runtime.store.ping()
        except DBAPIError as exc:
            problems.append(f"database: {type(exc).__name__}")
        consumer = runtime.consumer
        problem = consumer.not_ready_because() if consumer is not None else None
        if problem:
            problems.append(problem)
        if runtime.contacts.last_error and not runtime.contacts.book.authorities():
            problems.append("contacts: none loaded")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"])
    def metrics_endpoint(runtime: RuntimeDep) -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _reminder_loop(runtime: AlertRuntime, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            if await asyncio.to_thread(runtime.reminders.run_once):
                runtime.worker.wake()
        except DBAPIError:  # keep reminding after a database blip
            log.exception("reminder round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=runtime.settings.reminder_check_s)


def serve(settings: AlertsSettings, kafka: KafkaSettings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # kafka-python logs every connection at INFO; its warnings are what operators need.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    runtime = build_runtime(settings, kafka, AlertKeys.watch(settings.api_keys_file))
    uvicorn.run(
        create_app(runtime), host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False
    )
