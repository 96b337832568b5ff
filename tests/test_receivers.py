"""The test peers are real and strict: signatures checked by standardwebhooks, real
sockets that refuse connections when down, a real SMTP server that can say 451."""

import json
import smtplib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
from standardwebhooks import Webhook

from tests.receivers import SmtpSink, WebhookReceiver, new_secret

pytestmark = pytest.mark.integration


def signed(
    secret: str, payload: object, *, msg_id: str | None = None, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """A body and its Standard Webhooks headers, signed by the reference implementation."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    body = json.dumps(payload)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        # sign() returns only the header value, "v1,<base64>"; data must be str, not bytes.
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }
    return body.encode(), headers


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def hook(secret: str) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret) as receiver:
        yield receiver


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


def test_new_secret_is_standard_webhooks_form() -> None:
    s = new_secret()
    assert s.startswith("whsec_")
    assert len(s) == len("whsec_") + 32  # 24 bytes, base64 without padding
    assert new_secret() != s


def test_signed_delivery_is_accepted_and_recorded(hook: WebhookReceiver, secret: str) -> None:
    payload = {"type": "risk.raised", "data": {"provider": "1-101", "level": "red"}}
    body, headers = signed(secret, payload, msg_id="msg_one")

    response = httpx.post(hook.url, content=body, headers=headers)

    assert response.status_code == 204
    [delivery] = hook.wait_for(1)
    assert delivery.path == "/hook"
    assert delivery.webhook_id == "msg_one"
    assert delivery.webhook_timestamp == headers["webhook-timestamp"]
    assert delivery.body == payload
    assert delivery.verified and delivery.status == 204
    assert hook.ids() == ["msg_one"]
    assert hook.unique_ids() == {"msg_one"}


@pytest.mark.parametrize(
    "fault",
    ["tampered body", "wrong secret", "stale timestamp", "no signature", "malformed signature", "wrong path"],
)
def test_bad_deliveries_are_refused_and_not_received(hook: WebhookReceiver, secret: str, fault: str) -> None:
    payload = {"n": 1}
    url = hook.url
    if fault == "wrong secret":
        body, headers = signed(new_secret(), payload)
    elif fault == "stale timestamp":
        body, headers = signed(secret, payload, at=datetime.now(UTC) - timedelta(minutes=6))
    else:
        body, headers = signed(secret, payload)
    if fault == "tampered body":
        body = body.replace(b"1", b"2")
    elif fault == "no signature":
        del headers["webhook-signature"]
    elif fault == "malformed signature":
        headers["webhook-signature"] = "v1"  # standardwebhooks raises ValueError here, not its own error
    elif fault == "wrong path":
        url = hook.url.replace("/hook", "/elsewhere")

    response = httpx.post(url, content=body, headers=headers)

    assert response.status_code == (404 if fault == "wrong path" else 401)
    assert hook.received() == []
    [request] = hook.requests()
    assert not request.verified and not request.accepted
    assert request.error
    if fault != "wrong path":
        assert hook.rejected() == [request]


def test_set_response_answers_503_once_then_2xx(hook: WebhookReceiver, secret: str) -> None:
    hook.set_response(503, {"Retry-After": "2"}, times=1)
    body, headers = signed(secret, {"n": 1}, msg_id="msg_retry")

    first = httpx.post(hook.url, content=body, headers=headers)
    second = httpx.post(hook.url, content=body, headers=headers)

    assert first.status_code == 503
    assert first.headers["retry-after"] == "2"
    assert second.status_code == 204
    assert [(r.webhook_id, r.verified, r.status) for r in hook.requests()] == [
        ("msg_retry", True, 503),
        ("msg_retry", True, 204),
    ]
    assert hook.ids() == ["msg_retry"]


def test_set_response_until_changed(hook: WebhookReceiver, secret: str) -> None:
    hook.set_response(410)
    for _ in range(3):
        body, headers = signed(secret, {})
        assert httpx.post(hook.url, content=body, headers=headers).status_code == 410
    hook.reset_response()
    body, headers = signed(secret, {})
    assert httpx.post(hook.url, content=body, headers=headers).status_code == 204
    assert len(hook.requests()) == 4 and len(hook.received()) == 1


def test_down_refuses_connections_and_up_listens_on_the_same_port(hook: WebhookReceiver, secret: str) -> None:
    port = hook.port
    with httpx.Client(timeout=2) as client:  # a kept-alive connection must die too
        body, headers = signed(secret, {"n": 1})
        assert client.post(hook.url, content=body, headers=headers).status_code == 204

        hook.down()
        with pytest.raises(httpx.ConnectError):
            httpx.post(hook.url, content=body, headers=headers)
        with pytest.raises(httpx.TransportError):
            client.post(hook.url, content=body, headers=headers)

        hook.up()
        assert hook.port == port
        body, headers = signed(secret, {"n": 2})
        assert client.post(hook.url, content=body, headers=headers).status_code == 204

    assert [r.body for r in hook.wait_for(2)] == [{"n": 1}, {"n": 2}]


def test_set_delay_makes_a_slow_receiver_that_still_takes_the_delivery(hook: WebhookReceiver, secret: str) -> None:
    hook.set_delay(0.3)
    body, headers = signed(secret, {"n": 1}, msg_id="msg_slow")

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(hook.url, content=body, headers=headers, timeout=0.1)

    assert hook.wait_for(1)[0].webhook_id == "msg_slow"  # the sender gave up; the receiver has it
    hook.set_delay(0)
    body, headers = signed(secret, {"n": 2})
    assert httpx.post(hook.url, content=body, headers=headers, timeout=0.2).status_code == 204


def test_wait_for_times_out_with_what_it_saw(hook: WebhookReceiver, secret: str) -> None:
    body, headers = signed(new_secret(), {}, msg_id="msg_forged")
    httpx.post(hook.url, content=body, headers=headers)

    with pytest.raises(AssertionError, match=r"(?s)at least 1 accepted.*msg_forged.*401"):
        hook.wait_for(1, timeout=0.2)
    with pytest.raises(AssertionError, match="satisfying"):
        hook.wait_for(lambda got: bool(got), timeout=0.1)


def multipart(to: str = "duty@council.test") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "alerts@caresignal.test"
    mail["To"] = to
    mail["Subject"] = "Red alert: Sunny Care Ltd — £ and ü survive"
    mail.set_content("Plain text body\n")
    mail.add_alternative("<p>HTML body</p>\n", subtype="html")
    return mail


def send(sink: SmtpSink, mail: EmailMessage) -> None:
    # local_hostname: smtplib would otherwise call socket.getfqdn() for EHLO.
    with smtplib.SMTP(sink.host, sink.port, local_hostname="localhost", timeout=5) as smtp:
        smtp.send_message(mail)


def test_smtp_multipart_arrives_with_both_parts(sink: SmtpSink) -> None:
    send(sink, multipart())

    [got] = sink.wait_for(1)
    assert got.mail_from == "alerts@caresignal.test"
    assert got.rcpt_tos == ("duty@council.test",)
    assert got.message["subject"] == "Red alert: Sunny Care Ltd — £ and ü survive"
    assert got.message.is_multipart()
    plain = got.message.get_body(("plain",))
    html = got.message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == "Plain text body\n"
    assert html.get_content() == "<p>HTML body</p>\n"


def test_smtp_451_once_then_accepts(sink: SmtpSink) -> None:
    sink.fail_next(451, times=1)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(sink, multipart())
    assert refused.value.smtp_code == 451
    send(sink, multipart())

    assert len(sink.wait_for(1)) == 1
    assert [(r.stage, r.code) for r in sink.refusals()] == [("data", 451)]


def test_smtp_550_at_rcpt_refuses_the_recipient(sink: SmtpSink) -> None:
    sink.fail_next(550, at="rcpt")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(sink, multipart("nobody@council.test"))
    code, _ = refused.value.recipients["nobody@council.test"]
    assert code == 550
    assert sink.messages() == []


def test_smtp_sink_restarts_on_the_same_port(sink: SmtpSink) -> None:
    port = sink.port
    sink.down()
    with pytest.raises(ConnectionRefusedError):
        send(sink, multipart())
    sink.up()
    assert sink.port == port
    send(sink, multipart())
    assert len(sink.wait_for(1)) == 1
