"""When to try a failed delivery again, and when to give up. Pure: no I/O, no clock."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from services.alerts.outcomes import DeliveryOutcome


def http_verdict(status: int) -> DeliveryOutcome:
    if 200 <= status < 300:
        return DeliveryOutcome.delivered
    if status == 410:  # the receiver says the endpoint no longer exists: stop using it
        return DeliveryOutcome.endpoint_gone
    # Every other answer, 4xx included, is retried within the window: receivers
    # misconfigure auth or deploy broken code for a while and then fix it, and a
    # safeguarding alert is worth the wait.
    return DeliveryOutcome.retry


def smtp_verdict(code: int) -> DeliveryOutcome:
    if 200 <= code < 300:
        return DeliveryOutcome.delivered
    # A 5xx reply (a malformed or unknown address) is a refusal for good.
    return DeliveryOutcome.refused if 500 <= code < 600 else DeliveryOutcome.retry


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait, from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    # ASCII only: str.isdigit() also accepts "²" and other digits float() refuses.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float
    max_s: float
    window: timedelta

    def delay(self, attempts: int, jitter: float, retry_after_s: float | None = None) -> float:
        """Delay before attempt `attempts + 1`; `jitter` is uniform in [0, 1).

        Exponential with "equal jitter": half the step is fixed, half random, so
        receivers that failed together do not all come back at the same instant.
        A `Retry-After` is honoured: never sooner than the receiver asked.
        """
        # The exponent is capped: 2.0 ** 1024 raises OverflowError, long after the cap.
        step: float = min(self.max_s, self.initial_s * 2.0 ** min(max(0, attempts - 1), 1000))
        delay = step / 2 + jitter * step / 2
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def next_attempt(
        self, created_at: datetime, now: datetime, attempts: int, jitter: float, retry_after_s: float | None = None
    ) -> datetime | None:
        """When to try again, or None: the window is over, the delivery is dead."""
        deadline = created_at + self.window
        if now >= deadline:
            return None
        delay = self.delay(attempts, jitter, retry_after_s)
        # One last try at the deadline rather than giving up early because the next
        # step overshoots it. Compared before building a timedelta: a huge Retry-After
        # does not fit in one.
        if delay >= (deadline - now).total_seconds():
            return deadline
        return now + timedelta(seconds=delay)
