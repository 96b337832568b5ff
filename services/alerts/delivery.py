"""Sends deliveries from the outbox: signed webhooks and email, each retried on its own.

Every delivery has its own attempt count and next-attempt time, and up to
`max_in_flight` are sent at once, so a receiver that hangs or fails never holds up
the others. A webhook carries the same `webhook-id` on every attempt.
"""

import asyncio
import contextlib
import logging
import random
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy.exc import DBAPIError

from services.alerts.contacts import ContactFileWatcher
from services.alerts.messages import Links, email_message, notification, webhook_body
from services.alerts.metrics import AlertMetrics
from services.alerts.names import NameBook
from services.alerts.outcomes import DeliveryOutcome
from services.alerts.retry import RetryPolicy, http_verdict, parse_retry_after, smtp_verdict
from services.alerts.routing import Channel, Directory
from services.alerts.signing import signature_headers
from services.alerts.store import AlertStore, AttemptResult, DeliveryJob

log = logging.getLogger("caresignal.alerts.delivery")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Sent:
    verdict: DeliveryOutcome
    status: int | None
    detail: str | None
    retry_after_s: float | None = None
    endpoint_url: str | None = None


def send_email(config: SmtpConfig, mail: EmailMessage) -> Sent:
    """Blocking: run it in a thread."""
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
            if config.starttls:
                smtp.starttls()
            if config.username and config.password:
                smtp.login(config.username, config.password)
            refused = smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        worst = max(codes) if codes else 550
        return Sent(smtp_verdict(worst), worst, f"recipient refused: {worst}")
    except smtplib.SMTPResponseException as exc:
        message = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return Sent(smtp_verdict(exc.smtp_code), exc.smtp_code, f"SMTP {exc.smtp_code}: {message}"[:300])
    except (smtplib.SMTPException, OSError) as exc:
        return Sent(DeliveryOutcome.retry, None, f"SMTP connection failed: {type(exc).__name__}: {exc}"[:300])
    if refused:
        return Sent(DeliveryOutcome.refused, 550, f"recipient refused: {sorted(refused)}")
    return Sent(DeliveryOutcome.delivered, 250, None)


class AttemptRecorder:
    """Writes finished attempts in small batches: all that finished together share one
    transaction. A sender is released only once its attempt is committed."""

    def __init__(self, store: AlertStore, max_batch: int = 64) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[AttemptResult, float, str | None, asyncio.Future[None]]] = asyncio.Queue()

    async def record(self, result: AttemptResult, now: float, endpoint_url: str | None) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((result, now, endpoint_url, done))
        await done

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self.store.finish_many, [(r, now, url) for r, now, url, _ in batch])
            except DBAPIError as exc:
                # Not recorded: each sender's delivery is retried when its claim lapses.
                for *_, done in batch:
                    done.set_exception(exc)
                continue
            for *_, done in batch:
                done.set_result(None)


class DeliveryWorker:
    def __init__(
        self,
        store: AlertStore,
        contacts: ContactFileWatcher,
        directory: Directory,
        metrics: AlertMetrics,
        links: Links,
        smtp: SmtpConfig,
        retry: RetryPolicy,
        *,
        max_in_flight: int = 32,
        poll_interval_s: float = 0.5,
        claim_lease_s: float = 60.0,
        http_timeout_s: float = 10.0,
        user_agent: str = "CareSignal-Alerts/1",
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        names: NameBook | None = None,
    ) -> None:
        self.store = store
        self.contacts = contacts
        self.directory = directory
        self.names = names or NameBook(directory)
        self.metrics = metrics
        self.links = links
        self.smtp = smtp
        self.retry = retry
        self.max_in_flight = max_in_flight
        self.poll_interval_s = poll_interval_s
        self.claim_lease_s = max(claim_lease_s, http_timeout_s * 3, smtp.timeout_s * 2)
        self.http_timeout_s = http_timeout_s
        self.user_agent = user_agent
        self.clock = clock
        self.jitter = jitter
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._recorder: AttemptRecorder | None = None

    def wake(self) -> None:
        """Called from the event loop when new deliveries were stored."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
        recorder = AttemptRecorder(self.store)
        self._recorder = recorder
        recording = asyncio.create_task(recorder.run())
        async with httpx.AsyncClient(timeout=self.http_timeout_s, limits=limits, follow_redirects=False) as client:
            self._client = client
            while not stop.is_set():
                # Cleared before the round, so a wake-up during it is not lost.
                self._wake.clear()
                try:
                    await self._round()
                except DBAPIError:  # a database blip must not end delivery for good
                    log.exception("delivery round failed; retrying")
                    await asyncio.sleep(1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=self.http_timeout_s + 1)
        recording.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recording

    async def _round(self) -> None:
        room = self.max_in_flight - len(self._in_flight)
        while room > 0:
            jobs = await asyncio.to_thread(self.store.claim_due, self.clock(), room, self.claim_lease_s)
            for job in jobs:
                task = asyncio.create_task(self._deliver(job))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if len(jobs) < room:
                return
            room = self.max_in_flight - len(self._in_flight)
            # All slots busy: let some finish before claiming more.
            if room <= 0:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                room = self.max_in_flight - len(self._in_flight)

    async def _deliver(self, job: DeliveryJob) -> None:
        started = time.perf_counter()
        try:
            sent = await (self._send_webhook(job) if job.channel is Channel.webhook else self._send_email(job))
        except Exception as exc:  # a bug in rendering must not lose the delivery: retry it
            log.exception("delivery %s failed unexpectedly", job.delivery_id)
            sent = Sent(DeliveryOutcome.retry, None, f"internal error: {type(exc).__name__}")
        duration_ms = (time.perf_counter() - started) * 1000
        now = self.clock()
        outcome = sent.verdict
        next_at: float | None = None
        if sent.verdict is DeliveryOutcome.retry:
            when = self.retry.next_attempt(
                datetime.fromtimestamp(job.created_at, UTC),
                datetime.fromtimestamp(now, UTC),
                job.attempts + 1,
                self.jitter(),
                sent.retry_after_s,
            )
            if when is None:
                outcome = DeliveryOutcome.dead
                log.error(
                    "delivery %s to %s gave up after %d attempts over %s: %s",
                    job.delivery_id,
                    job.target,
                    job.attempts + 1,
                    self.retry.window,
                    sent.detail,
                )
            else:
                next_at = when.timestamp()
        result = AttemptResult(job.delivery_id, outcome, sent.status, sent.detail, duration_ms, next_at)
        assert self._recorder is not None
        await self._recorder.record(result, now, sent.endpoint_url)
        self.metrics.notifications.labels(job.channel.value, outcome.value).inc()
        if outcome is DeliveryOutcome.delivered:
            self.metrics.latency.labels(job.channel.value).observe(max(0.0, now - job.published_at))
        elif outcome is DeliveryOutcome.endpoint_gone:
            log.error("endpoint %s answered 410 Gone: disabled; fix the contact file", job.target)

    async def _send_webhook(self, job: DeliveryJob) -> Sent:
        hook = self.contacts.book.webhook(job.target)
        if hook is None:
            return Sent(DeliveryOutcome.retry, None, f"endpoint {job.target!r} is no longer in the contact file")
        now = datetime.fromtimestamp(self.clock(), UTC)
        message = notification(job.content, job.recipient, job.delivery_id, self.links, now)
        body = webhook_body(message)
        headers = {
            **signature_headers(hook.secret, job.delivery_id, int(now.timestamp()), body),
            "content-type": "application/json",
            "user-agent": self.user_agent,
        }
        assert self._client is not None
        try:
            response = await self._client.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Sent(
                DeliveryOutcome.retry, None, f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__, None, hook.url
            )
        verdict = http_verdict(response.status_code)
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        detail = None if verdict is DeliveryOutcome.delivered else f"HTTP {response.status_code}"
        return Sent(verdict, response.status_code, detail, retry_after, hook.url)

    async def _send_email(self, job: DeliveryJob) -> Sent:
        now = datetime.fromtimestamp(self.clock(), UTC)
        message = notification(job.content, job.recipient, job.delivery_id, self.links, now)
        mail = email_message(message, self.smtp.sender, job.target, self.names.current())
        return await asyncio.to_thread(send_email, self.smtp, mail)


def retry_policy(initial_s: float, max_s: float, window_h: float) -> RetryPolicy:
    return RetryPolicy(initial_s=initial_s, max_s=max_s, window=timedelta(hours=window_h))
