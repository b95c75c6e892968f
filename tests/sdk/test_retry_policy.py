"""The backoff between retries: exponential, jittered, capped, never sooner than Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from zemfyre_license import RetryPolicy
from zemfyre_license.retry import parse_retry_after


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for retry, backoff in enumerate((1.0, 2.0, 4.0, 8.0, 8.0, 8.0)):
        delays = {policy.delay(retry, None, rng) for _ in range(50)}
        assert all(backoff / 2 <= delay <= backoff for delay in delays)
        assert len(delays) > 40  # spread out: instances that failed together do not retry together


def test_retry_after_is_a_floor_within_reason() -> None:
    policy = RetryPolicy(base_delay=1.0, max_retry_after=120.0)
    rng = random.Random(2)
    assert policy.delay(0, 30.0, rng) == 30.0
    assert 4.0 <= policy.delay(3, 1.0, rng) <= 8.0  # a backoff longer than Retry-After stands
    assert policy.delay(0, 10_000.0, rng) == 120.0


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
