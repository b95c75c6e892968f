"""Fixed-window rate-limit counters kept in Redis, so every API process shares them.

The rules that use them (who is counted against which limit, and when) are one step,
core/request_limits.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import redis
import redis.asyncio

from core.settings import Settings, get_settings

log = logging.getLogger(__name__)


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
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

    def decide(
        self, bucket: str, count: int, limit: int, window_seconds: int, now: float
    ) -> Decision:
        """The decision for the `count`th hit in the current window; a denial is remembered
        until the window ends."""
        if count <= limit:
            return Decision(True, 0)
        window_end = (int(now // window_seconds) + 1) * window_seconds
        retry_after = max(1, int(window_end - now + 0.999))
        self.remember(bucket, retry_after)
        return Decision(False, retry_after)

    def any(self) -> bool:
        """Whether any denial may still stand (a cheap test before looking buckets up)."""
        return bool(self._until)

    def check(self, bucket: str) -> Decision | None:
        until = self._until.get(bucket)
        if until is None:
            return None
        remaining = until - time.time()
        if remaining <= 0:
            self._until.pop(bucket, None)
            return None
        return Decision(False, max(1, int(remaining + 0.999)))


# Adds each amount to its key and returns the new counts; a key this call created gets its
# expiry (one script call for a whole batch of keys: KEYS, ARGV = amount, seconds per key).
_INCREMENT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[2 * i - 1])
  local count = redis.call('INCRBY', key, amount)
  if count == amount then
    redis.call('EXPIRE', key, ARGV[2 * i])
  end
  counts[i] = count
end
return counts
"""


class _Increments:
    """Counter increments of one event loop, sent to Redis together.

    Every ingress request counts against a limit; a round trip each would cost more than the
    request's share of its group transaction. Increments that arrive while a call is in flight
    wait for it and then go in the next one (as the ingress's group commit does), so a busy
    process sends one script call per turn, however many requests it serves. Each caller still
    gets its own exact count: a key incremented k times ending at n gave its callers n-k+1..n,
    in the order they asked; a peek (amount 0) gets the count as of its place in that order.
    A caller counts any number of keys at once and waits for one future (a group's limits).
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._script = client.register_script(_INCREMENT_SCRIPT)
        # Per key, in the order asked: (the asking caller's counts, the key's place in them,
        # the amount).
        self._pending: dict[str, list[tuple[list[int], int, int]]] = {}
        self._expiries: dict[str, int] = {}
        self._callers: list[tuple[asyncio.Future[list[int]], list[int]]] = []
        self._sending: asyncio.Task[None] | None = None

    def count(
        self, keys: Sequence[str], expire_seconds: int, amount: int = 1
    ) -> asyncio.Future[list[int]]:
        """Each key's count once `amount` is added to it (the order of `keys`)."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        counts = [0] * len(keys)
        self._callers.append((future, counts))
        for position, key in enumerate(keys):
            self._pending.setdefault(key, []).append((counts, position, amount))
            self._expiries[key] = expire_seconds
        if self._sending is None:
            self._sending = asyncio.ensure_future(self._send())
        return future

    async def _send(self) -> None:
        try:
            while self._callers:
                pending, self._pending = self._pending, {}
                expiries, self._expiries = self._expiries, {}
                callers, self._callers = self._callers, []
                await self._send_one(pending, expiries, callers)
        finally:
            self._sending = None

    async def _send_one(
        self,
        pending: dict[str, list[tuple[list[int], int, int]]],
        expiries: dict[str, int],
        callers: list[tuple[asyncio.Future[list[int]], list[int]]],
    ) -> None:
        arguments: list[int] = []
        added: list[int] = []
        for key, waiting in pending.items():
            total = 0
            for _, _, amount in waiting:
                total += amount
            added.append(total)
            arguments += (total, expiries[key])
        try:
            totals = await self._script(keys=list(pending), args=arguments) if pending else []
        except Exception as exc:  # noqa: BLE001 - each caller decides what a failure means
            for future, _ in callers:
                if not future.done():
                    future.set_exception(exc)
            return
        for waiting, total, amounts in zip(pending.values(), totals, added, strict=True):
            count = int(total) - amounts
            for counts, position, amount in waiting:
                count += amount
                counts[position] = count
        for future, counts in callers:
            if not future.done():
                future.set_result(counts)


class RedisRateLimiter:
    """Asynchronous: the check runs on the event loop without blocking other requests."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        # An asyncio Redis client belongs to the loop it was made on (one per server process;
        # several in tests, which run a loop per client).
        self._increments: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Increments] = (
            weakref.WeakKeyDictionary()
        )
        self._denials = _Denials()

    def denied(self, bucket: str) -> Decision | None:
        """A denial this process already saw for `bucket` in the current window (no Redis)."""
        return self._denials.check(bucket)

    def denies_any(self) -> bool:
        """Whether `denied` may answer anything but None (no Redis)."""
        return self._denials.any()

    async def remember(self, name: str, seconds: int) -> None:
        """Note `name` for every process for `seconds` (best effort)."""
        try:
            await self._counter().client.set(f"{self._prefix}ratelimit:{name}", 1, ex=seconds)
        except redis.RedisError as exc:
            log.warning("rate limiter unavailable, not remembered: %s", exc)

    async def forget(self, name: str) -> None:
        try:
            await self._counter().client.delete(f"{self._prefix}ratelimit:{name}")
        except redis.RedisError as exc:
            log.warning("rate limiter unavailable, not forgotten: %s", exc)

    async def remembers(self, name: str) -> bool:
        """Whether any process noted `name` (`remember`) and it has not expired."""
        try:
            return bool(await self._counter().client.exists(f"{self._prefix}ratelimit:{name}"))
        except redis.RedisError as exc:
            log.warning("rate limiter unavailable, nothing remembered: %s", exc)
            return False

    def forget_denials(self) -> None:
        """Tests reset the counters in Redis; the remembered denials go with them."""
        self._denials.clear()

    def _counter(self) -> _Increments:
        loop = asyncio.get_running_loop()
        increments = self._increments.get(loop)
        if increments is None:
            client = redis.asyncio.Redis.from_url(
                self._url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            increments = self._increments[loop] = _Increments(client)
        return increments

    async def hit(
        self, bucket: str, limit: int, window_seconds: int, *, amount: int = 1
    ) -> Decision:
        return (await self.hit_many([bucket], limit, window_seconds, amount=amount))[0]

    async def hit_many(
        self,
        buckets: Sequence[str],
        limit: int | Sequence[int],
        window_seconds: int,
        *,
        amount: int = 1,
    ) -> list[Decision]:
        """One hit on each bucket (one Redis call for all of them); a decision each. `limit` is
        every bucket's, or each one's. With `amount` 0, only whether each is over its limit
        already (nothing counted)."""
        now = time.time()
        window = int(now // window_seconds)
        limits = [limit] * len(buckets) if isinstance(limit, int) else limit
        decisions: list[Decision | None] = [self._denials.check(bucket) for bucket in buckets]
        asked = [position for position, decision in enumerate(decisions) if decision is None]
        if asked:
            prefix, suffix = f"{self._prefix}ratelimit:", f":{window}"
            keys = [prefix + buckets[position] + suffix for position in asked]
            try:
                counts = await self._counter().count(keys, window_seconds + 1, amount)
            except redis.RedisError as exc:
                # Refusing paying customers because the limiter's store is down would be worse
                # than letting a burst through; the database still protects itself.
                log.warning("rate limiter unavailable, allowing request: %s", exc)
                counts = [0] * len(asked)
            for position, count in zip(asked, counts, strict=True):
                decisions[position] = self._denials.decide(
                    buckets[position], count, limits[position], window_seconds, now
                )
        return decisions  # type: ignore[return-value]


class LocalRateLimiter:
    """For the embedded development default, which has no Redis: counters in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._denials = _Denials()

    def denied(self, bucket: str) -> Decision | None:
        return self._denials.check(bucket)

    def denies_any(self) -> bool:
        return self._denials.any()

    def forget_denials(self) -> None:
        self._denials.clear()
        with self._lock:
            self._counts.clear()

    # One process, nothing to share: what it remembers is the caller's own (in-process) record.
    async def remember(self, name: str, seconds: int) -> None:
        return None

    async def forget(self, name: str) -> None:
        return None

    async def remembers(self, name: str) -> bool:
        return False

    async def hit(
        self, bucket: str, limit: int, window_seconds: int, *, amount: int = 1
    ) -> Decision:
        denied = self._denials.check(bucket)
        if denied is not None:
            return denied
        now = time.time()
        key = f"{bucket}:{int(now // window_seconds)}"
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts.clear()
            self._counts[key] = count = self._counts.get(key, 0) + amount
        return self._denials.decide(bucket, count, limit, window_seconds, now)

    async def hit_many(
        self,
        buckets: Sequence[str],
        limit: int | Sequence[int],
        window_seconds: int,
        *,
        amount: int = 1,
    ) -> list[Decision]:
        limits = [limit] * len(buckets) if isinstance(limit, int) else limit
        return [
            await self.hit(bucket, each, window_seconds, amount=amount)
            for bucket, each in zip(buckets, limits, strict=True)
        ]


RateLimiter = RedisRateLimiter | LocalRateLimiter


@lru_cache(maxsize=4)
def limiter_for(redis_url: str | None, prefix: str) -> RateLimiter:
    if redis_url and redis_url.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(redis_url, prefix)
    return LocalRateLimiter()


def current_limiter() -> RateLimiter:
    settings = get_settings()
    # Asked several times per request: resolved once per settings object (one pair, replaced
    # whole: threads share it).
    global _current
    current = _current
    if current is None or current[0] is not settings:
        current = _current = (
            settings,
            limiter_for(settings.resolved_rate_limit_redis_url, settings.celery_key_prefix),
        )
    return current[1]


_current: tuple[Settings, RateLimiter] | None = None
