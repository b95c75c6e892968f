"""Fixed-window rate limits kept in Redis, so every API process shares the same counters."""

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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int


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
        return Decision(False, retry_after)


class LocalRateLimiter:
    """For the embedded development default, which has no Redis: counters in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

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
        return Decision(False, max(1, int((window + 1) * window_seconds - now + 0.999)))


RateLimiter = RedisRateLimiter | LocalRateLimiter


@lru_cache(maxsize=4)
def limiter_for(redis_url: str | None, prefix: str) -> RateLimiter:
    if redis_url and redis_url.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(redis_url, prefix)
    return LocalRateLimiter()
