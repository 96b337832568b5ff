"""Webhook signatures, checked against `standardwebhooks`, an independent implementation of
the Standard Webhooks specification that a receiver is likely to use."""

import base64
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

import pytest
import standardwebhooks.webhooks
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.alerts.signing import secret_key, sign, signature_headers

BODY = json.dumps(
    {"type": "caresignal.alert.escalation", "timestamp": "2024-06-01T09:30:00Z", "data": {"alert_id": "al_1"}},
    separators=(",", ":"),
).encode()

secrets = st.binary(min_size=24, max_size=64).map(lambda raw: "whsec_" + base64.b64encode(raw).decode())
msg_ids = st.from_regex(r"\Amsg_[0-9a-f]{24}\Z")


# The Standard Webhooks test vector, as published with the specification in
# github.com/standard-webhooks/standard-webhooks (at b2fa7b8): every reference library's
# sign test asserts it (libraries/python/tests/test_webhooks.py::test_sign_function,
# libraries/go/webhook_test.go::TestWebhookSign, and the C#, Java, JavaScript and PHP ones).
# The example in spec/standard-webhooks.md (msg_2KWPBgLlAfxdpx2AI54pPJ85f4W, 1674087231,
# v1,K5oZ...) gives no secret, so it cannot be checked.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_secret_key_is_the_base64_after_the_prefix() -> None:
    raw = os.urandom(32)
    assert secret_key("whsec_" + base64.b64encode(raw).decode()) == raw


@settings(max_examples=100)
@given(secrets, msg_ids, st.dictionaries(st.text(max_size=10), st.text(max_size=30) | st.integers(), max_size=5))
def test_our_headers_verify_with_standardwebhooks(secret: str, msg_id: str, payload: dict[str, object]) -> None:
    # `ensure_ascii=False` so the body holds non-ASCII UTF-8, as a location name could.
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = signature_headers(secret, msg_id, int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == payload


def test_the_headers_are_the_three_standard_ones() -> None:
    headers = signature_headers(new_secret(), "msg_abc", 1717234200, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == "1717234200"
    version, signature = headers["webhook-signature"].split(",")
    assert version == "v1"
    assert len(base64.b64decode(signature, validate=True)) == 32


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, headers: (body.replace(b"al_1", b"al_2"), headers), id="body"),
        pytest.param(lambda body, headers: (body + b" ", headers), id="body-whitespace"),
        pytest.param(lambda body, headers: (body, {**headers, "webhook-id": "msg_other"}), id="id"),
        pytest.param(
            lambda body, headers: (body, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)}),
            id="timestamp",
        ),
    ],
)
def test_tampering_fails_verification(tamper: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]) -> None:
    secret = new_secret()
    headers = signature_headers(secret, "msg_abc", int(time.time()), BODY)
    Webhook(secret).verify(BODY, headers)  # untampered: accepted
    body, changed = tamper(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, changed)


def test_another_secret_fails_verification() -> None:
    headers = signature_headers(new_secret(), "msg_abc", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


@settings(max_examples=200)
@given(
    secrets,
    st.text(min_size=1, max_size=40),
    st.integers(min_value=0, max_value=4_102_444_800),
    st.text(max_size=200),
)
def test_sign_equals_the_reference_implementation(secret: str, msg_id: str, timestamp: int, body: str) -> None:
    reference = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)
    assert sign(secret, msg_id, timestamp, body.encode()) == reference


def test_signatures_differ_when_any_input_differs() -> None:
    secret = new_secret()
    base = sign(secret, "msg_a", 1717234200, BODY)
    assert sign(secret, "msg_a", 1717234200, BODY) == base
    assert sign(secret, "msg_b", 1717234200, BODY) != base
    assert sign(secret, "msg_a", 1717234201, BODY) != base
    assert sign(secret, "msg_a", 1717234200, BODY + b"\n") != base
    assert sign(new_secret(), "msg_a", 1717234200, BODY) != base


def test_the_specification_test_vector_is_signed_exactly() -> None:
    assert sign(VECTOR_SECRET, VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD) == VECTOR_SIGNATURE
    assert signature_headers(VECTOR_SECRET, VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD) == {
        "webhook-id": VECTOR_MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }


class _VectorClock(datetime):
    """`datetime` whose now() is the vector's timestamp: the verifier receivers use refuses
    a timestamp more than 5 minutes from its clock, and the vector is from 2021."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> "_VectorClock":
        return cls.fromtimestamp(VECTOR_TIMESTAMP, tz)


def test_the_specification_test_vector_is_accepted_by_the_verifier_receivers_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = signature_headers(VECTOR_SECRET, VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD)
    # At today's clock the 2021 timestamp is a replay: refused, whatever the signature.
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(VECTOR_SECRET).verify(VECTOR_PAYLOAD, headers)
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", _VectorClock)
    assert Webhook(VECTOR_SECRET).verify(VECTOR_PAYLOAD, headers) == {"test": 2432232314}
    # The same call refuses the vector with one bit of its signature changed.
    digest = bytearray(base64.b64decode(VECTOR_SIGNATURE.removeprefix("v1,")))
    digest[0] ^= 1
    forged = {**headers, "webhook-signature": "v1," + base64.b64encode(bytes(digest)).decode()}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(VECTOR_SECRET).verify(VECTOR_PAYLOAD, forged)
