"""Engine and session handling: one engine per process and database URL; rows to records."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConfigurationError
from core.settings import Settings, get_settings, normalise_database_url

# SQLSTATEs of a statement the server gave up on, not of a wrong one: lock_timeout (55P03),
# statement_timeout (57014), a deadlock victim (40P01), a serialization failure (40001). The
# work was not done; the caller should retry (the API answers 503).
RETRYABLE_SQLSTATES = frozenset({"55P03", "57014", "40P01", "40001"})
# A server that cannot take any work now, whatever the statement: read-only (25006: a standby,
# or a primary demoted in a failover), insufficient resources (class 53: disk full, out of
# memory, too many connections) and connection exceptions (class 08). Also answered with 503.
READ_ONLY_SQLSTATE = "25006"
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53"})


def is_unavailable_sqlstate(sqlstate: object) -> bool:
    """Whether a statement failed with `sqlstate` because of the server's state, not its own
    fault: the work was not done and the caller should retry later (the API answers 503)."""
    if not isinstance(sqlstate, str):
        return False
    return (
        sqlstate in RETRYABLE_SQLSTATES
        or sqlstate == READ_ONLY_SQLSTATE
        or sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES
    )


EXPECTED_URLS = "postgresql://user:password@host:5432/database or sqlite:///path/billing.db"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        # WAL lets the api, worker and beat of `billing dev` read while another writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def ensure_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder; a fresh checkout has no data/ yet."""
    database = make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _postgres_options(settings: Settings) -> str:
    # Server-side limits set when each connection opens: a request queued behind a customer row
    # lock, or a runaway query, fails fast (503 / task retry) instead of holding a worker.
    return (
        f"-c lock_timeout={settings.database_lock_timeout_ms} "
        f"-c statement_timeout={settings.database_statement_timeout_ms}"
    )


def _create_engine(url: str, settings: Settings) -> Engine:
    if url.startswith("sqlite"):
        ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, object] = {"connect_timeout": 5}
    if make_url(url).get_backend_name() == "postgresql":
        connect_args["options"] = _postgres_options(settings)
    return create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


# The license change counter's poll (core/licensing/read_cache.py): one connection of its own
# that fails fast, so a saturated request pool never delays it until license trust lapses.
POLL_STATEMENT_TIMEOUT_MS = 1000


@lru_cache(maxsize=8)
def poll_engine_for(url: str) -> Engine:
    """An engine beside the request pool for one small, frequent read."""
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        return engine_for(url)  # one file: no pool to be starved of
    connect_args: dict[str, object] = {"connect_timeout": 2}
    if make_url(url).get_backend_name() == "postgresql":
        connect_args["options"] = f"-c statement_timeout={POLL_STATEMENT_TIMEOUT_MS}"
    return create_engine(
        url,
        pool_size=1,
        max_overflow=1,
        pool_timeout=POLL_STATEMENT_TIMEOUT_MS / 1000,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def describe_unusable_url(url: str, exc: Exception) -> str:
    """One line naming the setting and why, without the URL itself (it may hold a password)."""
    scheme = url.partition("://")[0] if "://" in url else "(none)"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"DATABASE_URL is not usable (scheme {scheme}): {reason}; expected {EXPECTED_URLS}"


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """The process's engine for `url`; an unusable URL is a ConfigurationError naming the
    setting (the CLI prints it as one line, the API answers 503 not_configured)."""
    url = normalise_database_url(url)
    try:
        return _create_engine(url, get_settings())
    except (ArgumentError, ImportError, ValueError) as exc:
        # ArgumentError: not a URL; NoSuchModuleError (an ArgumentError): unknown dialect;
        # ImportError: the dialect's driver is not installed.
        raise ConfigurationError(describe_unusable_url(url, exc), field="DATABASE_URL") from exc


def check_database_url(settings: Settings | None = None) -> None:
    """Fail at start-up, not on the first request, when DATABASE_URL cannot be used."""
    engine_for((settings or get_settings()).resolved_database_url)


def get_engine() -> Engine:
    return engine_for(get_settings().resolved_database_url)


@lru_cache(maxsize=8)
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


def new_session() -> Session:
    return _session_factory(get_settings().resolved_database_url)()


# What a long run that keeps its progress takes from its door (a task, a command): a factory
# that opens one transaction and commits it on success, `session_scope` or a test's. The run
# decides where a piece of work ends; the door decides how transactions are opened
# (docs/architecture.md, "Who owns the transaction").
Transaction = Callable[[], AbstractContextManager[Session]]


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on any error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


Record = TypeVar("Record")


def record_from(record_type: type[Record], row: Any, **values: Any) -> Record:
    """A result dataclass filled from the same-named attributes of `row` (an ORM object, a
    result row or another record), with `values` for the fields the row does not say."""
    copied = (f.name for f in dataclasses.fields(record_type) if f.name not in values)  # type: ignore[arg-type]
    return record_type(**{name: getattr(row, name) for name in copied}, **values)


def advisory_lock(session: Session, key: str, *, wait_seconds: float | None = None) -> None:
    """Serialise, until the session's transaction ends, the work of every session that takes
    the same key (PostgreSQL's transaction-level advisory lock: no row is locked, so nothing
    else waits). The embedded SQLite default has no such lock and serialises nothing here.

    `wait_seconds` waits that long for the key instead of the database lock timeout: for work
    that holds the key across calls to Stripe, which take longer than a row lock is held."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if wait_seconds is None:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        return
    # SET LOCAL lasts until the transaction ends: set the longer wait for this statement only.
    session.execute(text(f"SET LOCAL lock_timeout = {int(wait_seconds * 1000)}"))
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    session.execute(text(f"SET LOCAL lock_timeout = {get_settings().database_lock_timeout_ms}"))


def insert_for(dialect: str):  # type: ignore[no-untyped-def]
    """The dialect's INSERT (PostgreSQL's or SQLite's), which has on_conflict_do_nothing and
    on_conflict_do_update."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def dialect_insert(session: Session):  # type: ignore[no-untyped-def]
    """`insert_for` the database `session` is bound to."""
    return insert_for(session.get_bind().dialect.name)
