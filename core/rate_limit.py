"""Fixed-window rate limits kept in Redis, so every API process shares the same counters.

Failed authentications count per client address too (`count_failed_authentication`): once a
client is over that limit its credentialed requests are refused before any key lookup or RSA
verification, so guessing admin keys or forging license JWTs costs the service nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache

import redis
import redis.asyncio as async_redis

from core.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int


# Remembered denials per process: in a fixed window, a bucket over its limit stays over it until
# the window ends, so later requests are refused without asking Redis.
MAX_REMEMBERED_DENIALS = 100_000


class _Denials:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def remember(self, bucket: str, retry_after: int) -> None:
        if len(self._until) > MAX_REMEMBERED_DENIALS:
            self._until.clear()
        self._until[bucket] = time.time() + retry_after

    def clear(self) -> None:
        self._until.clear()

    def check(self, bucket: str) -> Decision | None:
        until = self._until.get(bucket)
        if until is None:
            return None
        remaining = until - time.time()
        if remaining <= 0:
            self._until.pop(bucket, None)
            return None
        return Decision(False, max(1, int(remaining + 0.999)))


class RedisRateLimiter:
    """Asynchronous: the check runs on the event loop without blocking other requests."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        # An asyncio Redis client belongs to the loop it was made on (one per server process;
        # several in tests, which run a loop per client).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, async_redis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._denials = _Denials()

    def denied(self, bucket: str) -> Decision | None:
        """A denial this process already saw for `bucket` in the current window (no Redis)."""
        return self._denials.check(bucket)

    def forget_denials(self) -> None:
        """Tests reset the counters in Redis; the remembered denials go with them."""
        self._denials.clear()

    def _client(self) -> async_redis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = async_redis.Redis.from_url(
                self._url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._clients[loop] = client
        return client

    async def hit(self, bucket: str, limit: int, window_seconds: int) -> Decision:
        remembered = self._denials.check(bucket)
        if remembered is not None:
            return remembered
        now = time.time()
        window = int(now // window_seconds)
        key = f"{self._prefix}ratelimit:{bucket}:{window}"
        try:
            pipe = self._client().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, window_seconds + 1, nx=True)
            count = (await pipe.execute())[0]
        except redis.RedisError as exc:
            # Refusing paying customers because the limiter's store is down would be worse than
            # letting a burst through; the database still protects itself.
            log.warning("rate limiter unavailable, allowing request: %s", exc)
            return Decision(True, 0)
        if count <= limit:
            return Decision(True, 0)
        retry_after = max(1, int((window + 1) * window_seconds - now + 0.999))
        self._denials.remember(bucket, retry_after)
        return Decision(False, retry_after)


class LocalRateLimiter:
    """For the embedded development default, which has no Redis: counters in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._denials = _Denials()

    def denied(self, bucket: str) -> Decision | None:
        return self._denials.check(bucket)

    def forget_denials(self) -> None:
        self._denials.clear()
        with self._lock:
            self._counts.clear()

    async def hit(self, bucket: str, limit: int, window_seconds: int) -> Decision:
        now = time.time()
        window = int(now // window_seconds)
        key = f"{bucket}:{window}"
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts.clear()
            self._counts[key] = count = self._counts.get(key, 0) + 1
        if count <= limit:
            return Decision(True, 0)
        retry_after = max(1, int((window + 1) * window_seconds - now + 0.999))
        self._denials.remember(bucket, retry_after)
        return Decision(False, retry_after)


RateLimiter = RedisRateLimiter | LocalRateLimiter


@lru_cache(maxsize=4)
def limiter_for(redis_url: str | None, prefix: str) -> RateLimiter:
    if redis_url and redis_url.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(redis_url, prefix)
    return LocalRateLimiter()


def current_limiter() -> RateLimiter:
    settings = get_settings()
    return limiter_for(settings.resolved_rate_limit_redis_url, settings.celery_key_prefix)


def failed_auth_bucket(client_address: str) -> str:
    return f"authfail:{client_address}"


async def count_failed_authentication(client_address: str) -> Decision:
    """Count one failed authentication (admin key, license, any bearer) of a client address.

    The API's middleware calls this for every 401 it answers; call it yourself only for a
    failure that is answered some other way. The decision says whether the client is now over
    RATE_LIMIT_FAILED_AUTH_PER_CLIENT (its credentialed requests then get 429 until the window
    ends).
    """
    settings = get_settings()
    return await current_limiter().hit(
        failed_auth_bucket(client_address),
        settings.rate_limit_failed_auth_per_client,
        settings.rate_limit_window_seconds,
    )


def refused_for_failed_authentication(client_address: str) -> Decision | None:
    """The client is over its failed-authentication limit in this window (no Redis round trip:
    the denial was seen when the failure that crossed the limit was counted)."""
    return current_limiter().denied(failed_auth_bucket(client_address))
