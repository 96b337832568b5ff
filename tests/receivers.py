"""Real peers for the alert service's tests: a webhook receiver and an SMTP sink.

Both listen on 127.0.0.1 on a port of their own, run in a background thread, and can
be stopped and started again on the same port, to play a receiver that is down for a
while and then back.

`WebhookReceiver` checks every POST with `standardwebhooks` (an implementation
independent of ours), so a delivery is only counted if its signature verifies.
`SmtpSink` is an `aiosmtpd` server that keeps every message it accepts, parsed with
`email.policy.default`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks import Webhook

__all__ = [
    "SmtpMessage",
    "SmtpRefusal",
    "SmtpSink",
    "WebhookReceiver",
    "WebhookRequest",
    "new_secret",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

T = TypeVar("T")


def new_secret() -> str:
    """A Standard Webhooks endpoint secret: `whsec_` + base64 of 24 random bytes (no padding needed)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait(
    cond: threading.Condition,
    snapshot: Callable[[], list[T]],
    what: str,
    predicate_or_count: int | Callable[[list[T]], bool],
    timeout: float,
    describe: Callable[[], str],
) -> list[T]:
    done: Callable[[list[T]], bool]
    if isinstance(predicate_or_count, int):
        count = predicate_or_count
        done = lambda items: len(items) >= count  # noqa: E731
        wanted = f"at least {count} {what}"
    else:
        done = predicate_or_count
        wanted = f"{what} satisfying {getattr(predicate_or_count, '__name__', repr(predicate_or_count))}"
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            items = snapshot()
            if done(items):
                return items
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"waited {timeout:g}s for {wanted}; have {len(items)}.\n{describe()}")
            cond.wait(min(left, 0.05))


# --------------------------------------------------------------------------- webhooks


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request the receiver answered."""

    method: str
    path: str
    webhook_id: str | None
    webhook_timestamp: str | None
    body: Any  # the parsed JSON body; None if the body was not JSON
    raw_body: bytes
    headers: dict[str, str]  # lower-cased names
    verified: bool  # the signature verified under the receiver's secret at the time
    status: int  # the status answered
    error: str | None  # why it was refused, if it was
    received_at: float  # time.time()

    @property
    def accepted(self) -> bool:
        """Signed correctly and answered 2xx: a delivery the sender may count as done."""
        return self.verified and 200 <= self.status < 300


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    times: int | None  # None: until changed


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (socket.getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connections cut by down() end up here; a test peer should not spray tracebacks.
        log.debug("webhook receiver: error serving %s", client_address, exc_info=True)

    def cut_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook receiver: " + format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status >= 200 and status not in (204, 304):
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.end_headers()
        self.wfile.flush()

    def do_POST(self) -> None:
        raw = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, extra, error, verified, parsed = self.server.receiver._judge(self.path, raw, headers)
        self.server.receiver._pause()
        self.server.receiver._record(
            WebhookRequest(
                method="POST",
                path=self.path,
                webhook_id=headers.get("webhook-id"),
                webhook_timestamp=headers.get("webhook-timestamp"),
                body=parsed,
                raw_body=raw,
                headers=headers,
                verified=verified,
                status=status,
                error=error,
                received_at=time.time(),
            )
        )
        payload = json.dumps({"status": status} if error is None else {"status": status, "error": error}).encode()
        self._answer(status, extra, payload)

    def _not_allowed(self) -> None:
        self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.receiver._record(
            WebhookRequest(
                method=self.command,
                path=self.path,
                webhook_id=headers.get("webhook-id"),
                webhook_timestamp=headers.get("webhook-timestamp"),
                body=None,
                raw_body=b"",
                headers=headers,
                verified=False,
                status=405,
                error=f"method {self.command} not allowed",
                received_at=time.time(),
            )
        )
        self._answer(405, {"Allow": "POST"}, b'{"status": 405}')

    do_GET = do_PUT = do_PATCH = do_DELETE = _not_allowed  # noqa: N815


class _Restartable:
    """A peer that can go away and come back on the same port, and be used with `with`."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def down(self) -> None:
        """The peer goes away: connections to its port are refused."""
        self.stop()

    def up(self) -> None:
        """The peer is back, on the same port."""
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class WebhookReceiver(_Restartable):
    """A Standard Webhooks receiver on 127.0.0.1, strict about signatures.

    Every POST to `path` is verified with `standardwebhooks.Webhook(secret).verify`.
    A bad or missing signature (or a timestamp more than 5 minutes from the wall
    clock: that is the library's tolerance) is answered 401; a POST elsewhere 404; a
    signed body that is not JSON 400. Otherwise the receiver answers `ok_status`,
    unless `set_response` says otherwise. Every request is recorded (`requests()`);
    `received()` is the accepted ones: signature verified and answered 2xx.

        with WebhookReceiver(secret) as hook:
            ... configure the service to POST to hook.url ...
            hook.wait_for(1)
    """

    def __init__(self, secret: str, *, path: str = "/hook", port: int = 0, ok_status: int = 204) -> None:
        Webhook(secret)  # reject an unusable secret now, not on the first request
        self._secret = secret
        self.path = path
        self._port = port
        self.ok_status = ok_status
        self._cond = threading.Condition()
        self._requests: list[WebhookRequest] = []
        self._response: _Response | None = None
        self._delay_s = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # ---- lifecycle

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the receiver has no port until it is started")
        return self._port

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        """Listen (on the same port as before, after a stop). Idempotent."""
        with self._lifecycle:
            if self._server is not None:
                return self
            server = _Server(self._port, self)
            self._port = server.server_port
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"webhook-receiver-{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            return self

    def stop(self) -> None:
        """Close the listening socket and cut open connections. Idempotent; records are kept."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None:
                return
            server.shutdown()
            server.server_close()  # from here, connecting is refused
            server.cut_connections()  # and kept-alive connections die too
            if thread is not None:
                thread.join(timeout=5)

    # ---- behaviour

    def set_response(self, status: int, headers: dict[str, str] | None = None, times: int | None = None) -> None:
        """Answer correctly signed deliveries with `status` (and `headers`): for the next
        `times` of them, or until changed if `times` is None. Then back to `ok_status`.

        Deliveries with a bad signature are still answered 401 and do not use up `times`.
        """
        if not 100 <= status <= 599:
            raise ValueError(f"not an HTTP status: {status}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for until changed)")
        with self._cond:
            self._response = _Response(status, dict(headers or {}), times)

    def set_delay(self, seconds: float) -> None:
        """Take `seconds` over every answer from now on (0: answer at once): a slow receiver.
        The request is recorded after the delay, just before the answer, so a sender that
        gives up meanwhile still counts as having delivered it, as with a real receiver."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        with self._cond:
            self._delay_s = float(seconds)

    def reset_response(self) -> None:
        """Back to answering `ok_status`."""
        with self._cond:
            self._response = None

    def set_secret(self, secret: str) -> None:
        """Verify with another secret from now on (a rotation on the receiver's side)."""
        Webhook(secret)
        with self._cond:
            self._secret = secret

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        with self._cond:
            self._requests.clear()

    # ---- what arrived

    def requests(self) -> list[WebhookRequest]:
        """Every request answered, in order: accepted, refused and rejected."""
        with self._cond:
            return list(self._requests)

    def received(self) -> list[WebhookRequest]:
        """The accepted deliveries: signature verified and answered 2xx."""
        with self._cond:
            return [r for r in self._requests if r.accepted]

    def rejected(self) -> list[WebhookRequest]:
        """Requests whose signature did not verify (answered 401)."""
        with self._cond:
            return [r for r in self._requests if r.status == 401]

    def ids(self) -> list[str]:
        """`webhook-id` of each accepted delivery, repeats included."""
        return [r.webhook_id or "" for r in self.received()]

    def unique_ids(self) -> set[str]:
        return set(self.ids())

    def wait_for(
        self, predicate_or_count: int | Callable[[list[WebhookRequest]], bool], timeout: float = 5.0
    ) -> list[WebhookRequest]:
        """Wait until there are `count` accepted deliveries (or `predicate(received())` holds);
        return them. On timeout, AssertionError listing every request seen."""
        return _wait(
            self._cond, self.received, "accepted webhook deliveries", predicate_or_count, timeout, self.describe
        )

    def wait_for_requests(
        self, predicate_or_count: int | Callable[[list[WebhookRequest]], bool], timeout: float = 5.0
    ) -> list[WebhookRequest]:
        """Like `wait_for`, over every request (refused ones too)."""
        return _wait(self._cond, self.requests, "webhook requests", predicate_or_count, timeout, self.describe)

    def describe(self) -> str:
        """A summary of every request, for assertion messages."""
        rows = self.requests()
        if not rows:
            return f"no request reached {self.url if self._port else 'the receiver'}"
        lines = [f"requests to {self.url}:"]
        for r in rows:
            lines.append(
                f"  {r.method} {r.path} id={r.webhook_id} ts={r.webhook_timestamp} "
                f"verified={r.verified} -> {r.status}" + (f" ({r.error})" if r.error else "")
            )
        return "\n".join(lines)

    # ---- called by the handler threads

    def _judge(
        self, path: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], str | None, bool, Any]:
        """(status, response headers, error, verified, parsed body) for one POST."""
        with self._cond:
            secret = self._secret
        parsed: Any = None
        with contextlib.suppress(ValueError):
            parsed = json.loads(raw)
        if urlsplit(path).path != self.path:
            return 404, {}, f"no endpoint at {path}", False, parsed
        try:
            # json_parse=False: a signed body that is not JSON is a different fault (400).
            Webhook(secret).verify(raw, headers, json_parse=False)
        except Exception as exc:  # the library raises ValueError etc. too, for malformed headers
            return 401, {}, f"signature: {type(exc).__name__}: {exc}", False, parsed
        if parsed is None and raw.strip() != b"null":
            return 400, {}, "body is not JSON", True, None
        with self._cond:
            response = self._response
            if response is None:
                return self.ok_status, {}, None, True, parsed
            if response.times is not None:
                response.times -= 1
                if response.times <= 0:
                    self._response = None
            error = None if 200 <= response.status < 300 else f"answered {response.status} as told"
            return response.status, dict(response.headers), error, True, parsed

    def _pause(self) -> None:
        with self._cond:
            delay = self._delay_s
        if delay > 0:
            time.sleep(delay)

    def _record(self, request: WebhookRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()


# --------------------------------------------------------------------------- email


@dataclass(frozen=True)
class SmtpMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage  # parsed with email.policy.default, line endings as LF
    raw: bytes  # as received, CRLF line endings
    received_at: float  # time.time()


@dataclass(frozen=True)
class SmtpRefusal:
    stage: Literal["mail", "rcpt", "data"]
    code: int
    reply: str
    mail_from: str | None
    rcpt_tos: tuple[str, ...]
    at: float = field(default_factory=time.time)


@dataclass
class _Failure:
    code: int
    stage: Literal["mail", "rcpt", "data"]
    reply: str
    times: int


class _SinkHandler:
    """aiosmtpd handler. A `handle_MAIL`/`handle_RCPT` hook must itself record the
    address on the envelope and return the reply: aiosmtpd only does that when the
    hook is absent."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(  # noqa: N802  (aiosmtpd's hook names)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        refused = self.sink._refuse("mail", address, ())
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refused = self.sink._refuse("rcpt", envelope.mail_from, (address,))
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        refused = self.sink._refuse("data", envelope.mail_from, tuple(envelope.rcpt_tos))
        if refused:
            return refused
        raw = envelope.original_content or b""
        # On the wire lines end in CRLF, and the parser keeps the CR in text parts; a mail
        # client shows LF, so parse as one would store it (`raw` stays as received).
        message: EmailMessage = message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default)
        self.sink._store(SmtpMessage(envelope.mail_from or "", tuple(envelope.rcpt_tos), message, raw, time.time()))
        return "250 OK: queued"


class SmtpSink(_Restartable):
    """An SMTP server on 127.0.0.1 that keeps every message it accepts.

    with SmtpSink() as sink:
        ... configure the service with sink.host, sink.port ...
        [mail] = sink.wait_for(1)
        mail.message.get_body(("plain",)).get_content()
    """

    def __init__(self, *, port: int = 0, server_hostname: str = "sink.caresignal.test") -> None:
        # aiosmtpd's Controller checks readiness by connecting to (hostname, port), so
        # it cannot be given port 0: pick a free port now and keep it across restarts.
        self._port = port or _free_port()
        self.server_hostname = server_hostname  # given, or aiosmtpd calls socket.getfqdn()
        self._cond = threading.Condition()
        self._messages: list[SmtpMessage] = []
        self._refusals: list[SmtpRefusal] = []
        self._failure: _Failure | None = None
        self._controller: Controller | None = None
        self._lifecycle = threading.Lock()

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> Self:
        """Listen (on the same port after a stop: a Controller cannot be restarted, so each
        start makes a new one). Idempotent."""
        with self._lifecycle:
            if self._controller is None:
                controller = Controller(
                    _SinkHandler(self),
                    hostname=HOST,  # not None: aiosmtpd would pick ::1 where IPv6 exists
                    port=self._port,
                    server_hostname=self.server_hostname,
                    ready_timeout=5.0,
                )
                controller.start()
                self._controller = controller
            return self

    def stop(self) -> None:
        """Stop listening; messages are kept. Idempotent."""
        with self._lifecycle:
            controller, self._controller = self._controller, None
            if controller is not None:
                controller.stop()

    # ---- behaviour

    def fail_next(
        self,
        code: int = 451,
        times: int = 1,
        *,
        at: Literal["mail", "rcpt", "data"] = "data",
        message: str | None = None,
    ) -> None:
        """Refuse with `code` at the given stage, the next `times` times that stage is reached.

        451 at "data" makes smtplib raise SMTPDataError (an SMTPResponseException); a 550
        at "rcpt" makes it raise SMTPRecipientsRefused (every recipient refused); at
        "mail", SMTPSenderRefused. At "rcpt", `times` counts RCPT commands, i.e. messages
        when each has one recipient.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"an SMTP failure is 4xx or 5xx, not {code}")
        if times < 1:
            raise ValueError("times must be at least 1")
        klass = code // 100
        text = message or ("Try again later" if klass == 4 else "Refused")
        reply = f"{code} {klass}.0.0 {text} (CareSignal test sink)"
        with self._cond:
            self._failure = _Failure(code, at, reply, times)

    def clear_failures(self) -> None:
        with self._cond:
            self._failure = None

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._refusals.clear()

    # ---- what arrived

    def messages(self) -> list[SmtpMessage]:
        with self._cond:
            return list(self._messages)

    def refusals(self) -> list[SmtpRefusal]:
        """Each time the sink answered a failure because of `fail_next`."""
        with self._cond:
            return list(self._refusals)

    def wait_for(
        self, count_or_predicate: int | Callable[[list[SmtpMessage]], bool], timeout: float = 5.0
    ) -> list[SmtpMessage]:
        """Wait until `count` messages were accepted (or `predicate(messages())` holds); return
        them. On timeout, AssertionError saying what did arrive."""
        return _wait(self._cond, self.messages, "accepted emails", count_or_predicate, timeout, self.describe)

    def describe(self) -> str:
        lines = [f"SMTP sink {HOST}:{self._port}:"]
        lines += [
            f"  accepted {m.mail_from} -> {', '.join(m.rcpt_tos)}: {m.message['subject']!r}" for m in self.messages()
        ]
        lines += [
            f"  refused at {r.stage} ({r.mail_from} -> {', '.join(r.rcpt_tos)}): {r.reply}" for r in self.refusals()
        ]
        return "\n".join(lines) if len(lines) > 1 else f"no message reached the SMTP sink at {HOST}:{self._port}"

    # ---- called by the handler, on the sink's event loop thread

    def _refuse(
        self, stage: Literal["mail", "rcpt", "data"], mail_from: str | None, rcpt_tos: Sequence[str]
    ) -> str | None:
        with self._cond:
            failure = self._failure
            if failure is None or failure.stage != stage:
                return None
            failure.times -= 1
            if failure.times <= 0:
                self._failure = None
            self._refusals.append(SmtpRefusal(stage, failure.code, failure.reply, mail_from, tuple(rcpt_tos)))
            self._cond.notify_all()
            return failure.reply

    def _store(self, message: SmtpMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
