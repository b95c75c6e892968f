"""Console sessions: an admin API key signs in once; the browser then holds a random session id.

Only the id's SHA-256 is stored. A session ends when the operator signs out, when it sat idle
longer than CONSOLE_SESSION_IDLE_MINUTES, when CONSOLE_SESSION_MAX_HOURS have passed since sign-in,
and when its API key is revoked (`api_keys.revoke_api_key` deletes its sessions; a lookup also
refuses a revoked key's). Each session has its own CSRF token, which every POST must send back.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.orm import Session

from core.api_keys import authenticate_api_key, hash_key
from core.settings import get_settings
from models import ApiKey, ConsoleSession, utcnow

# Writing last_seen_at on every page would make each read a write; a minute is well inside the
# idle timeout.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class SignedIn:
    # The cookie's value: shown to the browser once, stored only as its hash.
    session_id: str
    csrf_token: str
    api_key: ApiKey


@dataclass(frozen=True)
class ConsoleUser:
    """Who is signed in, as a page sees it."""

    name: str
    role: str
    csrf_token: str
    api_key_id: int
    session_row_id: int

    @property
    def can_change(self) -> bool:
        return self.role != "viewer"


def sign_in(session: Session, key: str) -> SignedIn:
    """A new session for a valid, unrevoked admin API key (AuthenticationError otherwise)."""
    api_key = authenticate_api_key(session, key.strip())
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            session_hash=hash_key(session_id),
            api_key_id=api_key.id,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
        )
    )
    session.flush()
    return SignedIn(session_id=session_id, csrf_token=csrf_token, api_key=api_key)


def _timeouts() -> tuple[timedelta, timedelta]:
    settings = get_settings()
    idle = timedelta(minutes=settings.console_session_idle_minutes)
    return idle, timedelta(hours=settings.console_session_max_hours)


def _expired(row: ConsoleSession, now: datetime) -> bool:
    idle, absolute = _timeouts()
    return now - row.last_seen_at > idle or now - row.created_at > absolute


def expired_sessions(now: datetime) -> ColumnElement[bool]:
    """`_expired` in SQL: the sessions the nightly prune removes (core/retention/)."""
    idle, absolute = _timeouts()
    return or_(ConsoleSession.last_seen_at < now - idle, ConsoleSession.created_at < now - absolute)


def current_user(session: Session, session_id: str | None) -> ConsoleUser | None:
    """The session's user, or None when there is no such live session (an expired one is
    deleted on the way)."""
    if not session_id:
        return None
    found = session.execute(
        select(ConsoleSession, ApiKey)
        .join(ApiKey, ApiKey.id == ConsoleSession.api_key_id)
        .where(ConsoleSession.session_hash == hash_key(session_id))
    ).first()
    if found is None:
        return None
    row, api_key = found
    now = utcnow()
    if api_key.revoked_at is not None or _expired(row, now):
        session.execute(delete(ConsoleSession).where(ConsoleSession.id == row.id))
        return None
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        session.execute(
            update(ConsoleSession).where(ConsoleSession.id == row.id).values(last_seen_at=now)
        )
    return ConsoleUser(
        name=api_key.name,
        role=api_key.role,
        csrf_token=row.csrf_token,
        api_key_id=api_key.id,
        session_row_id=row.id,
    )


def csrf_matches(user: ConsoleUser, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(user.csrf_token.encode(), str(token).encode())


def sign_out(session: Session, session_id: str | None) -> None:
    """Ends the session (nothing to do when there is none)."""
    if session_id:
        session.execute(
            delete(ConsoleSession).where(ConsoleSession.session_hash == hash_key(session_id))
        )
