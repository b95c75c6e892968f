"""A per-process cache of license reads, invalidated across processes through a Redis version key.

Check-in and the admin license read serve what the `licenses` table says, which changes only
when a license is issued or revoked. Any process that commits such a change (API, worker, CLI)
increments one Redis key, `<prefix>licensing:version`; every API process reads that key at most
every POLL_SECONDS, lazily from the requests it serves, and drops its whole cache when the value
moved. The process that made the change drops its own at once, in the commit hook.

How stale can a read be? An entry is used only while the last successful poll is younger than
TRUST_SECONDS; a change committed after that poll is seen by the next poll, so at worst a
change reaches every API process within TRUST_SECONDS plus one poll's round trip (< 1 s). When
Redis cannot be reached, the polls fail, the trust runs out and every read goes to the database:
slower, never stale. Without Redis at all (the embedded development default) nothing is cached.

Entries are tagged with the generation current when their database read began, so a read that
raced with a change can never be stored as fresh.

The Redis is the one the API processes already share for their rate limits (RATE_LIMIT_REDIS_URL,
else the broker when it is Redis), under CELERY_KEY_PREFIX like every other key of the service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from functools import lru_cache
from typing import Any

import redis
import redis.asyncio as async_redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.settings import get_settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
TRUST_SECONDS = 0.7
MAX_ENTRIES = 100_000
_CHANGED = "licensing_changed"


class LicenseReadCache:
    def __init__(self, redis_url: str | None, key: str) -> None:
        self._redis_url = redis_url
        self.key = key
        self._entries: dict[str, tuple[int, Any, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._seen_version: bytes | None = None
        self._trusted_until = 0.0
        self._next_poll = 0.0
        self._poll_running = False
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, async_redis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._background: set[asyncio.Task[None]] = set()

    # -- reads ---------------------------------------------------------------------------------

    def generation(self) -> int:
        """Take this before reading the database; store the result with it (`put`)."""
        return self._generation

    def get(self, key: str) -> Any | None:
        """The cached value, or None when there is none or it may be stale. Starts a poll of the
        version key when one is due (call it from the event loop)."""
        if self._redis_url is None:
            return None
        now = time.monotonic()
        if now >= self._next_poll and not self._poll_running:
            self._start_poll(now)
        return self.peek(key, now)

    def peek(self, key: str, now: float | None = None) -> Any | None:
        """`get` without starting a poll (from any thread): still the value only while it may
        not be stale."""
        now = time.monotonic() if now is None else now
        if now >= self._trusted_until:
            return None
        entry = self._entries.get(key)
        if entry is None or entry[0] != self._generation or now >= entry[2]:
            return None
        return entry[1]

    def put(self, key: str, value: Any, generation: int, *, max_age: float | None = None) -> None:
        """Keep `value`, read from the database after `generation()` returned `generation`;
        `max_age` bounds how long it is served for things no version bump announces."""
        if self._redis_url is None or generation != self._generation:
            return  # a change happened while the value was read: it may already be stale
        expires = time.monotonic() + max_age if max_age is not None else float("inf")
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (generation, value, expires)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    # -- the version key -----------------------------------------------------------------------

    def _client(self) -> async_redis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            assert self._redis_url is not None
            client = async_redis.Redis.from_url(
                self._redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._clients[loop] = client
        return client

    def _start_poll(self, now: float) -> None:
        self._poll_running = True
        self._next_poll = now + POLL_SECONDS
        task = asyncio.get_running_loop().create_task(self._poll())
        # Held until done: the loop keeps only a weak reference to its tasks.
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll(self) -> None:
        started = time.monotonic()
        try:
            version = await self._client().get(self.key)
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "license cache: cannot read the version key, serving from the database: %s", exc
            )
            self._trusted_until = 0.0
            return
        finally:
            self._poll_running = False
        if version != self._seen_version:
            self.invalidate()
            self._seen_version = version
        # Trust runs from when the poll was sent: a change committed after that is not seen yet.
        self._trusted_until = started + TRUST_SECONDS

    def publish_change(self) -> None:
        """A license changed (committed): drop this process's entries and tell the others."""
        self.invalidate()
        if self._redis_url is None:
            return
        try:
            _sync_client(self._redis_url).incr(self.key)
        except (redis.RedisError, OSError) as exc:
            # The other API processes go on serving what they cached until their trust runs
            # out, which it does: their polls fail too unless only this process lost Redis.
            log.error("license cache: could not publish a license change: %s", exc)


@lru_cache(maxsize=4)
def _sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


@lru_cache(maxsize=4)
def _cache_for(redis_url: str | None, prefix: str) -> LicenseReadCache:
    return LicenseReadCache(redis_url, f"{prefix}licensing:version")


def license_read_cache() -> LicenseReadCache:
    settings = get_settings()
    return _cache_for(settings.resolved_rate_limit_redis_url, settings.celery_key_prefix or "")


# -- the commit hook ---------------------------------------------------------------------------


def mark_changed(session: Session) -> None:
    """Note that this transaction changes licenses; the change is published when it commits."""
    session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        license_read_cache().publish_change()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
