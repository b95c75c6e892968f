"""A per-process cache of license reads, invalidated across processes through a change counter
in the database.

Check-in, the usage ingress and the admin license read serve what the `licenses` table says,
which changes only when a license is issued, reissued or revoked. The transaction that makes
such a change (API, worker or CLI alike, Redis or not) also bumps one row, `license_changes`
(`mark_changed`): the signal commits with the change or not at all, so it cannot be lost. Every
API process reads that row at most every POLL_SECONDS, lazily from the requests it serves, and
drops its whole cache when the version moved. The process that made the change drops its own at
once, in the commit hook, and also when its COMMIT failed (it may have landed all the same); a
transaction rolled back before COMMIT changed nothing and drops nothing.

How stale can a read be? An entry is used only while the last successful poll started less than
TRUST_SECONDS ago; a change committed before a poll started is seen by that poll, so a change
reaches every API process within TRUST_SECONDS. A failed poll drops every entry (and trust) at
once: until a poll succeeds again every read goes to the database, slower, never stale. And no
entry is served for longer than MAX_AGE_SECONDS, which bounds what a change made behind the
service's back (an operator's UPDATE of licenses) goes unseen.

Entries are tagged with the generation current when their database read began, so a read that
raced with a change can never be stored as fresh.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import anyio.to_thread
from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from core.db import dialect_insert, poll_engine_for
from core.settings import Settings, get_settings
from models import LicenseChange, utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
TRUST_SECONDS = 0.7
MAX_AGE_SECONDS = 30.0
MAX_ENTRIES = 100_000
_CHANGED = "licensing_changed"
# Set once the bump is written and COMMIT is about to be sent: from then on, a failure may not
# mean nothing changed (the connection lost while COMMIT was answered: it may have landed).
_COMMITTING = "licensing_committing"
_COUNTER_ID = 1


class LicenseReadCache:
    """`read_version()` (blocking; run in a worker thread) returns the change counter."""

    def __init__(self, read_version: Callable[[], int]) -> None:
        self._read_version = read_version
        self._entries: dict[str, tuple[int, Any, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._seen_version: int | None = None
        self._trusted_until = 0.0
        self._next_poll = 0.0
        self._poll_running = False
        self._background: set[asyncio.Task[None]] = set()

    # -- reads ---------------------------------------------------------------------------------

    def generation(self) -> int:
        """Take this before reading the database; store the result with it (`put`)."""
        return self._generation

    def get(self, key: str) -> Any | None:
        """The cached value, or None when there is none or it may be stale. Starts a poll of the
        change counter when one is due (call it from the event loop)."""
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
        """Keep `value`, read from the database after `generation()` returned `generation`, for
        `max_age` seconds at most (MAX_AGE_SECONDS when not given, or when longer)."""
        if generation != self._generation:
            return  # a change happened while the value was read: it may already be stale
        age = MAX_AGE_SECONDS if max_age is None else min(max_age, MAX_AGE_SECONDS)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (generation, value, time.monotonic() + age)

    def invalidate(self) -> None:
        """Drop every entry (a change committed here, or a poll that saw or missed one)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    # -- the change counter --------------------------------------------------------------------

    def _start_poll(self, now: float) -> None:
        self._poll_running = True
        self._next_poll = now + POLL_SECONDS
        task = asyncio.get_running_loop().create_task(self.poll())
        # Held until done: the loop keeps only a weak reference to its tasks.
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def poll(self) -> bool:
        """Read the change counter once: drop everything when it moved or cannot be read; trust
        what is left for TRUST_SECONDS from when the read was sent. True when it was read."""
        started = time.monotonic()
        try:
            version = await anyio.to_thread.run_sync(self._read_version)
        except Exception as exc:  # noqa: BLE001 - whatever failed, nothing cached can be vouched for
            # A change may have committed meanwhile and this process cannot know: what it holds
            # goes, so the poll that succeeds next trusts only what was read after this one.
            self._trusted_until = 0.0
            self.invalidate()
            log.warning("license cache: cannot read the change counter, dropped: %s", exc)
            return False
        finally:
            self._poll_running = False
        if version != self._seen_version:
            self.invalidate()
            self._seen_version = version
        self._trusted_until = started + TRUST_SECONDS
        return True


def read_change_version() -> int:
    """The committed license change counter (0 before the first change)."""
    # Its own connection: waiting behind requests for the pool would let trust lapse just when
    # every check-in would then go to the saturated database.
    with poll_engine_for(get_settings().resolved_database_url).connect() as connection:
        version = connection.execute(
            select(LicenseChange.version).where(LicenseChange.id == _COUNTER_ID)
        ).scalar()
    return int(version or 0)


@lru_cache(maxsize=4)
def _cache_for(_database_url: str) -> LicenseReadCache:
    return LicenseReadCache(read_change_version)


def license_read_cache() -> LicenseReadCache:
    settings = get_settings()
    # Asked on every hot request: resolved once per settings object (one pair, replaced
    # whole: threads share it).
    global _current
    current = _current
    if current is None or current[0] is not settings:
        current = _current = (settings, _cache_for(settings.resolved_database_url))
    return current[1]


_current: tuple[Settings, LicenseReadCache] | None = None


# -- the commit hooks --------------------------------------------------------------------------


def mark_changed(session: Session) -> None:
    """Note that this transaction changes licenses: the change counter is bumped in it, just
    before it commits, and this process's cache is dropped once it has."""
    session.info[_CHANGED] = True


@event.listens_for(Session, "before_commit")
def _count_the_change(session: Session) -> None:
    if not session.info.get(_CHANGED):
        return
    # Last, so the counter's row lock is held only for the commit itself: the transaction's
    # pending writes go first (they may wait on other row locks). An upsert, so a database
    # without the row (a fresh or emptied one) counts from 1.
    session.flush()
    now = utcnow()
    insert = dialect_insert(session)(LicenseChange).values(
        id=_COUNTER_ID, version=1, changed_at=now
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[LicenseChange.id],
            set_={"version": LicenseChange.version + 1, "changed_at": now},
        )
    )
    session.info[_COMMITTING] = True


@event.listens_for(Session, "after_commit")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_COMMITTING, None)
    if session.info.pop(_CHANGED, False):
        license_read_cache().invalidate()


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # The whole transaction, not a savepoint of it, and even one that had not touched the
    # database yet (no DBAPI rollback happens then). Rolled back before its COMMIT was sent,
    # nothing changed: the entries stay. Rolled back after (the COMMIT failed), the change may
    # have landed (a connection lost while PostgreSQL answered): this process drops its own at
    # once, as after a commit; the others see the counter, if it moved, at their next poll.
    if previous_transaction.parent is None:
        session.info.pop(_CHANGED, None)
        if session.info.pop(_COMMITTING, False):
            license_read_cache().invalidate()
