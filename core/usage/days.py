"""UTC calendar days, in SQL and in Python, as the rollup and the viewer count them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy.orm import Session


def utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        # Whatever the session's time zone.
        return func.date(func.timezone("UTC", column))
    # SQLite stores UTC text (see UTCDateTime).
    return func.date(column)


def as_date(value: date | str) -> date:
    """A day as the driver returns it (a date, or text on SQLite)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def utc_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
