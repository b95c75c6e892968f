"""Admin API keys: random, shown once, stored as a SHA-256 hash.

A key has a role: `operator` reads and changes, `viewer` only reads (the API's GET routes and the
console's pages; every change is refused with 403)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core import audit
from core.errors import AuthenticationError, InvalidInputError, NotFoundError, PermissionDeniedError
from core.text import clean_text
from models import ApiKey, ConsoleSession, utcnow

KEY_PREFIX = "zbk_"
# Writing last_used_at on every request would make each admin read a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
OPERATOR = "operator"
VIEWER = "viewer"
ROLES = (OPERATOR, VIEWER)


@dataclass(frozen=True)
class CreatedApiKey:
    id: int
    name: str
    key: str
    role: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, role: str = OPERATOR) -> CreatedApiKey:
    name = clean_text(name, "name", max_length=255) or ""
    if not name:
        raise InvalidInputError("name is required", field="name")
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}", field="role")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[: len(KEY_PREFIX) + 6], key_hash=hash_key(key), role=role)
    session.add(row)
    session.flush()
    audit.record(session, "apikey.create", after={"id": row.id, "name": name, "role": role})
    return CreatedApiKey(id=row.id, name=name, key=key, role=role)


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    """Revokes the key and ends its console sessions. Idempotent (audited once)."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFoundError(f"no API key with id {key_id}", field="id")
    session.execute(delete(ConsoleSession).where(ConsoleSession.api_key_id == row.id))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session,
            "apikey.revoke",
            before={"id": row.id, "name": row.name, "revoked_at": None},
            after={"id": row.id, "name": row.name, "revoked_at": row.revoked_at},
        )
    return row


def authenticate_api_key(session: Session, key: str) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        raise AuthenticationError("invalid or revoked API key")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        # Written with the request's own transaction (committed by the request dependency).
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return row


def require_change_allowed(row: ApiKey) -> None:
    """403 for a viewer key asked to change something."""
    if row.role == VIEWER:
        raise PermissionDeniedError(
            f"API key {row.name!r} is a viewer: it may read, not change anything"
        )
