"""Admin API keys: random, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.errors import AuthenticationError, NotFoundError
from models import ApiKey, utcnow

KEY_PREFIX = "zbk_"
# Writing last_used_at on every request would make each admin read a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedApiKey:
    id: int
    name: str
    key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str) -> CreatedApiKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[: len(KEY_PREFIX) + 6], key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return CreatedApiKey(id=row.id, name=name, key=key)


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFoundError(f"no API key with id {key_id}", field="id")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
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
