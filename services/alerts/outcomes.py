"""What happened to a delivery: one vocabulary for the store, the API, the metrics and the logs.

A delivery's state is one of `pending`, `delivered`, `muted`, `endpoint-gone`, `dead`; an
attempt's outcome is one of `delivered`, `retry`, `endpoint-gone`, `refused`, `dead`; a
decision not to send is `muted` or `endpoint-gone`. The metric
`caresignal_alerts_notifications_total{outcome=...}` counts attempts and such decisions
under the same words.
"""

from enum import StrEnum


class DeliveryOutcome(StrEnum):
    # Waiting for its first or next attempt.
    pending = "pending"
    # The receiver accepted it (HTTP 2xx, SMTP 250).
    delivered = "delivered"
    # Not accepted this time; tried again after a backoff, within the retry window.
    retry = "retry"
    # Not sent: the authority muted this location (escalations and reminders only).
    muted = "muted"
    # 410 Gone from the endpoint: it is disabled, and nothing more is sent to it.
    endpoint_gone = "endpoint-gone"
    # Refused for good by the receiver (an SMTP 5xx); the delivery is then `dead`.
    refused = "refused"
    # Given up: the retry window ran out, or the receiver refused for good.
    dead = "dead"

    @classmethod
    def _missing_(cls, value: object) -> "DeliveryOutcome | None":
        # Spellings of `endpoint-gone` written by earlier versions (attempt rows, metrics).
        if value in ("gone", "endpoint_gone"):
            return cls.endpoint_gone
        return None


DELIVERY_STATES = frozenset(
    {
        DeliveryOutcome.pending,
        DeliveryOutcome.delivered,
        DeliveryOutcome.muted,
        DeliveryOutcome.endpoint_gone,
        DeliveryOutcome.dead,
    }
)
ATTEMPT_OUTCOMES = frozenset(
    {
        DeliveryOutcome.delivered,
        DeliveryOutcome.retry,
        DeliveryOutcome.endpoint_gone,
        DeliveryOutcome.refused,
        DeliveryOutcome.dead,
    }
)
