"""Retry policy of alert deliveries: exponential backoff with equal jitter, Retry-After,
a hard retry window, and what an HTTP status or an SMTP reply code means."""

import itertools
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerts.outcomes import DeliveryOutcome
from services.alerts.retry import RetryPolicy, http_verdict, parse_retry_after, smtp_verdict

POLICY = RetryPolicy(initial_s=5.0, max_s=3600.0, window=timedelta(hours=72))
NOW = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)

jitters = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
policies = st.builds(
    lambda initial, factor, hours: RetryPolicy(initial, initial * factor, timedelta(hours=hours)),
    st.floats(min_value=0.5, max_value=60.0),
    st.floats(min_value=1.0, max_value=1000.0),
    st.floats(min_value=0.01, max_value=200.0),
)
# Windows a few hundred capped steps long at most, so a whole schedule is quick to walk.
short_schedules = st.builds(
    lambda initial, factor, steps: RetryPolicy(initial, initial * factor, timedelta(seconds=initial * factor * steps)),
    st.floats(min_value=0.5, max_value=60.0),
    st.floats(min_value=1.0, max_value=1000.0),
    st.floats(min_value=0.01, max_value=300.0),
)


def expected_step(policy: RetryPolicy, attempts: int) -> float:
    """Doubling from the initial delay, capped: computed step by step so it cannot overflow."""
    step = policy.initial_s
    for _ in range(max(0, attempts - 1)):
        if step >= policy.max_s:
            break
        step *= 2
    return min(step, policy.max_s)


# --- delay ---------------------------------------------------------------------------


def test_delay_doubles_from_the_initial_delay_until_the_cap() -> None:
    fixed = [POLICY.delay(n, 0.0) for n in range(1, 12)]
    assert fixed == [2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 1800.0]
    assert POLICY.delay(1, 0.999999) == pytest.approx(5.0, abs=1e-4)
    assert POLICY.delay(50, 0.999999) == pytest.approx(3600.0, abs=1e-2)


@settings(max_examples=300)
@given(policies, st.integers(min_value=0, max_value=5000), jitters)
def test_delay_stays_between_half_the_step_and_the_step(policy: RetryPolicy, attempts: int, jitter: float) -> None:
    step = expected_step(policy, attempts)
    delay = policy.delay(attempts, jitter)
    assert step / 2 <= delay <= step
    assert delay <= policy.max_s


@settings(max_examples=200)
@given(policies, st.integers(min_value=1, max_value=60), jitters)
def test_delay_grows_exponentially_for_the_same_jitter(policy: RetryPolicy, attempts: int, jitter: float) -> None:
    now, later = policy.delay(attempts, jitter), policy.delay(attempts + 1, jitter)
    assert later >= now
    if policy.initial_s * 2.0**attempts <= policy.max_s:
        assert later == pytest.approx(2 * now)


@settings(max_examples=200)
@given(policies, st.integers(min_value=1, max_value=60), jitters, st.floats(min_value=0, max_value=1e6))
def test_delay_is_never_sooner_than_retry_after(
    policy: RetryPolicy, attempts: int, jitter: float, retry_after: float
) -> None:
    delay = policy.delay(attempts, jitter, retry_after)
    assert delay >= retry_after
    assert delay == max(retry_after, policy.delay(attempts, jitter))


# --- Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("86400", 86400.0)])
def test_retry_after_in_delta_seconds(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_retry_after_as_an_http_date() -> None:
    header = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, NOW) == 90.0
    assert parse_retry_after("Sat, 01 Jun 2024 10:30:00 +0100", NOW) == 0.0
    assert parse_retry_after("Sat, 01 Jun 2024 10:31:00 +0100", NOW) == 60.0


def test_retry_after_date_in_the_past_means_now() -> None:
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == 0.0


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "1.5",
        "1e3",
        "0x10",
        "²",  # a digit to str.isdigit(), not to float()
        "١٢",
        "Mon, 32 Jan 2024 00:00:00 GMT",
        "Sat, 01 Jun 2024 10:30:00 -0000",  # no zone: cannot tell when
        "Sat, 01 Jun 99999 10:30:00 GMT",
    ],
)
def test_garbage_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9]{1,400}\Z"), st.integers(0, 10**30).map(str)))
def test_any_retry_after_header_parses_or_is_ignored(header: str) -> None:
    seconds = parse_retry_after(header, NOW)
    assert seconds is None or seconds >= 0
    if seconds is not None:
        when = POLICY.next_attempt(NOW, NOW, 1, 0.5, seconds)
        assert when is not None
        assert NOW < when <= NOW + POLICY.window


# --- next attempt and the retry window ------------------------------------------------


@settings(max_examples=300)
@given(
    policies,
    st.floats(min_value=-0.5, max_value=1.5),
    st.integers(min_value=1, max_value=2000),
    jitters,
    st.none() | st.floats(min_value=0, max_value=1e12),
)
def test_next_attempt_never_beyond_the_deadline_and_none_once_it_passed(
    policy: RetryPolicy, elapsed: float, attempts: int, jitter: float, retry_after: float | None
) -> None:
    created = NOW
    now = created + policy.window * elapsed
    deadline = created + policy.window
    when = policy.next_attempt(created, now, attempts, jitter, retry_after)
    if now >= deadline:
        assert when is None
        return
    assert when is not None
    assert now < when <= deadline
    fixed_part = expected_step(policy, attempts) / 2
    wanted = max(fixed_part, retry_after or 0.0)
    if when < deadline:
        assert (when - now).total_seconds() >= wanted - 1e-6
    else:
        assert (deadline - now).total_seconds() <= policy.delay(attempts, jitter, retry_after) + 1e-6


def test_one_last_try_at_the_deadline_then_dead() -> None:
    deadline = NOW + POLICY.window
    almost = deadline - timedelta(seconds=1)
    assert POLICY.next_attempt(NOW, almost, 30, 0.5) == deadline
    assert POLICY.next_attempt(NOW, deadline, 31, 0.5) is None
    assert POLICY.next_attempt(NOW, deadline + timedelta(seconds=1), 31, 0.5) is None


def test_retry_after_beyond_the_window_still_gets_the_last_try() -> None:
    assert POLICY.next_attempt(NOW, NOW, 1, 0.0, 10**14) == NOW + POLICY.window


@settings(max_examples=50)
@given(short_schedules, st.integers(min_value=0, max_value=2**32))
def test_a_failing_delivery_is_tried_with_growing_gaps_until_the_deadline(policy: RetryPolicy, seed: int) -> None:
    rng = random.Random(seed)
    created = NOW
    deadline = created + policy.window
    times = [created]
    while (when := policy.next_attempt(created, times[-1], len(times), rng.random())) is not None:
        assert when > times[-1]
        times.append(when)
        assert len(times) < 10_000, "the schedule must end"
    assert times[-1] == deadline
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    for number, gap in enumerate(gaps[:-1], start=1):
        assert expected_step(policy, number) / 2 - 1e-6 <= gap <= expected_step(policy, number) + 1e-6


# --- verdicts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, DeliveryOutcome.delivered),
        (201, DeliveryOutcome.delivered),
        (202, DeliveryOutcome.delivered),
        (204, DeliveryOutcome.delivered),
        (410, DeliveryOutcome.endpoint_gone),
        (429, DeliveryOutcome.retry),
        (500, DeliveryOutcome.retry),
        (502, DeliveryOutcome.retry),
        (503, DeliveryOutcome.retry),
        (400, DeliveryOutcome.retry),
        (401, DeliveryOutcome.retry),
        (404, DeliveryOutcome.retry),
        (301, DeliveryOutcome.retry),
    ],
)
def test_http_verdict(status: int, verdict: DeliveryOutcome) -> None:
    assert http_verdict(status) is verdict


@given(st.integers(min_value=100, max_value=599))
def test_http_verdict_only_2xx_delivers_and_only_410_is_gone(status: int) -> None:
    verdict = http_verdict(status)
    assert (verdict is DeliveryOutcome.delivered) == (200 <= status < 300)
    assert (verdict is DeliveryOutcome.endpoint_gone) == (status == 410)
    assert verdict is not DeliveryOutcome.refused


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (250, DeliveryOutcome.delivered),
        (421, DeliveryOutcome.retry),
        (450, DeliveryOutcome.retry),
        (451, DeliveryOutcome.retry),
        (452, DeliveryOutcome.retry),
        (550, DeliveryOutcome.refused),
        (552, DeliveryOutcome.refused),
        (553, DeliveryOutcome.refused),
        (554, DeliveryOutcome.refused),
    ],
)
def test_smtp_verdict(code: int, verdict: DeliveryOutcome) -> None:
    assert smtp_verdict(code) is verdict


@given(st.integers(min_value=400, max_value=599))
def test_smtp_4xx_is_retried_and_5xx_refused(code: int) -> None:
    assert smtp_verdict(code) is (DeliveryOutcome.retry if code < 500 else DeliveryOutcome.refused)


def test_one_vocabulary_for_outcomes_in_the_metrics_and_for_rows_written_by_earlier_versions() -> None:
    from services.alerts.metrics import AlertMetrics
    from services.alerts.outcomes import ATTEMPT_OUTCOMES, DELIVERY_STATES

    metrics = AlertMetrics()
    labels = {
        sample.labels["outcome"]
        for family in metrics.registry.collect()
        if family.name == "caresignal_alerts_notifications"
        for sample in family.samples
    }
    assert labels == {o.value for o in ATTEMPT_OUTCOMES | DELIVERY_STATES} - {"pending"}
    assert "gone" not in labels and "endpoint_gone" not in labels
    assert DeliveryOutcome("gone") is DeliveryOutcome("endpoint_gone") is DeliveryOutcome.endpoint_gone
