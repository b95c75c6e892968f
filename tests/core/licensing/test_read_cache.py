"""core.licensing.read_cache: trusted only while the version key is read, dropped on a change."""

from __future__ import annotations

import asyncio

from core.db import session_scope
from core.licensing.read_cache import LicenseReadCache, license_read_cache, mark_changed
from tests.conftest import REDIS_URL, RUN_ID


async def _settle(cache: LicenseReadCache, key: str) -> object:
    """The cached value once a poll of the version key has had time to finish."""
    cache.get(key)  # starts the first poll
    await asyncio.sleep(0.1)
    return cache.get(key)


def test_served_while_the_version_is_read_and_dropped_when_it_moves() -> None:
    async def scenario() -> None:
        cache = LicenseReadCache(REDIS_URL, f"billing-test-{RUN_ID}:read-cache:version")
        cache.put("a", "answer", cache.generation())
        assert await _settle(cache, "a") == "answer"
        cache.publish_change()  # another process's commit, as far as this cache can tell
        assert cache.get("a") is None
        cache.put("a", "stale", cache.generation() - 1)  # read before the change: refused
        assert await _settle(cache, "a") is None

    asyncio.run(scenario())


def test_nothing_is_served_from_the_cache_when_redis_cannot_be_reached() -> None:
    async def scenario() -> None:
        cache = LicenseReadCache("redis://127.0.0.1:1/0", "unreachable:version")
        cache.put("a", "answer", cache.generation())
        assert await _settle(cache, "a") is None
        await asyncio.sleep(0.3)
        assert await _settle(cache, "a") is None

    asyncio.run(scenario())


def test_a_commit_that_changes_licenses_drops_this_process_entries() -> None:
    cache = license_read_cache()
    cache.put("b", "answer", cache.generation())
    before = cache.generation()
    with session_scope() as session:
        pass  # a commit that changes no license keeps the entries
    assert cache.generation() == before
    with session_scope() as session:
        mark_changed(session)
    assert cache.generation() == before + 1
