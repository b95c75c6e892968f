"""Requests to the billing service with retries: exponential backoff, jitter, `Retry-After`.

Connection failures, timeouts, lost answers, 429 and 5xx are retried; any other answer is
returned to the caller. Only requests that are safe to repeat are sent through here: check-in
is a read, and a usage report carries an Idempotency-Key that stays the same on every attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from zemfyre_license.errors import ServiceUnreachableError
from zemfyre_license.protocol import ANSWER_LIMIT, capped_request

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    # A Retry-After longer than this is cut to it (a misconfigured proxy must not stall us).
    max_retry_after: float = 600.0
    timeout: float = 10.0

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry).

        Exponential backoff with "equal jitter" (half fixed, half random, so instances that
        failed together do not retry together), and never sooner than the service's Retry-After.
        """
        backoff = min(self.max_delay, self.base_delay * (2.0 ** min(retry, 32)))
        wait = backoff / 2 + rng.uniform(0, backoff / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = parse_http_date(value)
    return max(0.0, (when - now).total_seconds()) if when else None


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _describe(failure: httpx.Response | Exception) -> str:
    if isinstance(failure, httpx.Response):
        return f"the service answered {failure.status_code}"
    return f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__


class Sender:
    """Sends requests to one service base URL, retrying as the policy says."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=self.policy.timeout)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self.attempts_made = 0

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """The first answer that is not worth retrying; ServiceUnreachableError after the last
        attempt failed (its reason says how)."""
        failure: httpx.Response | Exception | None = None
        for attempt in range(max(1, self.policy.attempts)):
            if attempt:
                self._sleep(self.policy.delay(attempt - 1, self._retry_after(failure), self._rng))
            self.attempts_made += 1
            try:
                response = capped_request(
                    self._http,
                    method,
                    self.base_url + path,
                    limit=ANSWER_LIMIT,
                    headers=dict(headers or {}),
                    json=json,
                )
            except httpx.TransportError as exc:
                failure = exc
                continue
            if response.status_code not in RETRYABLE_STATUSES:
                return response
            failure = response
        assert failure is not None
        attempts = max(1, self.policy.attempts)
        raise ServiceUnreachableError(
            f"{self.base_url} unreachable after {attempts} attempt(s): {_describe(failure)}"
        )

    def _retry_after(self, failure: httpx.Response | Exception | None) -> float | None:
        if not isinstance(failure, httpx.Response):
            return None
        return parse_retry_after(failure.headers.get("Retry-After"), self._clock())

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
