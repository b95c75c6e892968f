from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class License(Base):
    """Every license ever issued (the audit trail); the current one has no `superseded_at`."""

    __tablename__ = "licenses"
    __table_args__ = (Index("ix_licenses_customer_current", "customer_id", "superseded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("customers.customer_id", ondelete="CASCADE"), index=True
    )
    plan: Mapped[str] = mapped_column(String(50))
    kid: Mapped[str] = mapped_column(String(64))
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    token: Mapped[str] = mapped_column(Text)
    # Hash of what the license says; a reissue happens only when it changes.
    fingerprint: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(500))


class LicenseChange(Base):
    """One row counting the license changes committed (issue, reissue, revocation): bumped in the
    same transaction as the change, and polled by every API process to drop what it cached
    (core/licensing/read_cache.py). Its absence reads as version 0."""

    __tablename__ = "license_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
