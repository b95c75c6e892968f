"""Overage meter events per customer and day, as an operator reads them: what was sent, what
Stripe refused for good (failed), what could not be confirmed (unconfirmed) and what still
waits; and the two actions the CLI has, "Send again" (`billing stripe meter-retry`) and
"Settle" (`billing stripe meter-settle`), through the same service functions.

The page reads a window of days (ix_overage_meter_events_day), at most MAX_DAYS, grouped per
customer and day; it sorts those groups by day, customer (company, else email) or device-days
(`SORTS`) and shows the first _LIMIT."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.billing.metering.events import FAILED, SENT, UNCONFIRMED, UNSENT, in_state, state_of
from core.errors import InvalidInputError
from core.sorting import parse_sort
from models import Customer, OverageMeterEvent, utcnow

STATES = (SENT, UNSENT, FAILED, UNCONFIRMED)
MAX_DAYS = 90
# Customer-days on one page (newest first); narrow by state or customer to see others.
_LIMIT = 100
SORTS = ("day", "customer", "device_days")
DEFAULT_SORT = "-day"


@dataclass(frozen=True, slots=True)
class MeterEventNote:
    """One event of a day that is not sent: what an action needs (its id) and why."""

    event_id: int
    identifier: str
    state: str
    value: int
    error: str | None


@dataclass(frozen=True, slots=True)
class CustomerDay:
    customer_id: str
    email: str | None
    company_name: str | None
    day: date
    device_days: int
    events: int
    counts: dict[str, int]
    notes: list[MeterEventNote] = field(default_factory=list)

    @property
    def state(self) -> str:
        """The day's worst state: failed, unconfirmed, unsent, or sent."""
        for state in (FAILED, UNCONFIRMED, UNSENT):
            if self.counts.get(state):
                return state
        return SENT


def _checked(days: int, state: str | None) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"days must be between 1 and {MAX_DAYS}", field="days")
    if state is not None and state not in STATES:
        raise InvalidInputError(f"state must be one of {', '.join(STATES)}", field="state")


def customer_days(
    session: Session,
    *,
    days: int = 7,
    state: str | None = None,
    customer_id: str | None = None,
    now: datetime | None = None,
    sort: str = DEFAULT_SORT,
) -> list[CustomerDay]:
    """Per customer and day of the last `days` days (newest first, or as `sort` says):
    device-days recorded, and how many of the day's events are in each state."""
    _checked(days, state)
    order = parse_sort(sort, SORTS, DEFAULT_SORT)
    first = (now or utcnow()).date() - timedelta(days=days)
    window = [OverageMeterEvent.day >= first]
    if customer_id:
        window.append(OverageMeterEvent.customer_id == customer_id)
    counts = [func.sum(case((in_state(name), 1), else_=0)).label(name) for name in STATES]
    device_days = func.sum(OverageMeterEvent.value)
    name = func.lower(func.coalesce(Customer.company_name, Customer.email))
    first = {
        "day": OverageMeterEvent.day,
        "customer": name,
        "device_days": device_days,
    }[order.column]
    query = (
        select(
            OverageMeterEvent.customer_id,
            OverageMeterEvent.day,
            Customer.email,
            Customer.company_name,
            device_days.label("device_days"),
            func.count().label("events"),
            *counts,
        )
        .join(Customer, Customer.customer_id == OverageMeterEvent.customer_id)
        .where(*window)
        .group_by(
            OverageMeterEvent.customer_id,
            OverageMeterEvent.day,
            Customer.email,
            Customer.company_name,
        )
        # Then newest day, then customer: the same groups always in the same order.
        .order_by(
            first.desc() if order.descending else first,
            OverageMeterEvent.day.desc(),
            OverageMeterEvent.customer_id,
        )
        .limit(_LIMIT)
    )
    if state is not None:
        query = query.having(func.sum(case((in_state(state), 1), else_=0)) > 0)
    rows = session.execute(query).all()
    notes = _notes(session, window)
    return [
        CustomerDay(
            customer_id=row.customer_id,
            email=row.email,
            company_name=row.company_name,
            day=row.day,
            device_days=int(row.device_days or 0),
            events=int(row.events),
            counts={name: int(getattr(row, name) or 0) for name in STATES},
            notes=notes.get((row.customer_id, row.day), []),
        )
        for row in rows
    ]


def _notes(session: Session, window: list) -> dict[tuple[str, date], list[MeterEventNote]]:  # type: ignore[type-arg]
    """The window's events that are not sent (few: the actions' candidates)."""
    rows = session.scalars(
        select(OverageMeterEvent)
        .where(*window, OverageMeterEvent.sent_at.is_(None))
        .order_by(OverageMeterEvent.id)
        .limit(_LIMIT)
    )
    found: dict[tuple[str, date], list[MeterEventNote]] = {}
    for event in rows:
        found.setdefault((event.customer_id, event.day), []).append(
            MeterEventNote(
                event.id,
                event.identifier,
                state_of(event),
                event.value,
                event.last_error,
            )
        )
    return found
