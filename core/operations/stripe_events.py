"""The Stripe events an operator looks through: filtered by type, customer and state, newest
first or sorted by type or state (`SORTS`, each read through an index in that order), a page at
a time (keyset after the last row shown, so deep pages stay fast), with the company of the
customer each belongs to; one event with its payload, every handling attempt and the license it
issued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, tuple_, union
from sqlalchemy.orm import Session

from core.billing import inbox
from core.billing.event_attempts import attempts_of
from core.billing.event_customers import payload_stripe_customer
from core.customers.search import like_prefix
from core.errors import InvalidInputError, NotFoundError
from core.sorting import Sort, parse_sort
from models import Customer, License, StripeEvent, StripeEventAttempt

# The states an operator filters by (every status an event can have, `inbox.STATUSES`), and
# the stored statuses each one covers.
PROCESSED, IGNORED, FAILED, WAITING = "processed", "ignored", "failed", "waiting"
STATES: dict[str, tuple[str, ...]] = {
    PROCESSED: (inbox.PROCESSED,),
    IGNORED: (inbox.IGNORED,),
    FAILED: (inbox.FAILED,),
    WAITING: (inbox.PENDING,),
}
PAGE_SIZE = 50
# What each sort orders by, all one way (ix_stripe_events_created, _type_created,
# _status_created, read forwards or backwards); the id last, so the keyset never skips a row.
SORTS: dict[str, tuple[ColumnElement, ...]] = {  # type: ignore[type-arg]
    "created": (StripeEvent.stripe_created, StripeEvent.id),
    "type": (StripeEvent.type, StripeEvent.stripe_created, StripeEvent.id),
    "state": (StripeEvent.status, StripeEvent.stripe_created, StripeEvent.id),
}
DEFAULT_SORT = "-created"


@dataclass(frozen=True, slots=True)
class EventFilter:
    type: str | None = None
    customer_id: str | None = None
    state: str | None = None
    # Keyset: the next page starts after this row (its id), in the list's order.
    before: int | None = None
    sort: str = DEFAULT_SORT

    @property
    def order(self) -> Sort:
        return parse_sort(self.sort, SORTS, DEFAULT_SORT)

    def __post_init__(self) -> None:
        self.order  # noqa: B018 - a sort the list does not offer is refused up front
        if self.state is not None and self.state not in STATES:
            raise InvalidInputError(
                f"state must be one of {', '.join(STATES)}, not {self.state!r}", field="state"
            )


@dataclass(frozen=True, slots=True)
class EventRow:
    row_id: int
    event_id: str
    type: str
    status: str
    created: datetime
    received_at: datetime
    attempts: int
    last_error: str | None
    customer_id: str | None
    source: str
    # The customer's company (or email, without one), None for an event of no customer of ours.
    customer_name: str | None = None

    @property
    def cursor(self) -> str:
        return str(self.row_id)


def parse_cursor(value: str | None) -> int | None:
    """A page cursor (the last row's id) from the query string, or a 422 naming `before`."""
    if not value:
        return None
    if not value.isdigit():
        raise InvalidInputError("before must be a page cursor from the list", field="before")
    return int(value)


def _customers_named(text: str) -> Select[tuple[str]]:
    """Our customers an operator's Customer filter names: our id, a Stripe customer id (`cus_…`,
    also one customer.deleted has since cleared: through the events that named it), or a prefix
    of the email or company."""
    text = text.strip()
    if text.startswith("cus_"):
        return union(
            select(Customer.customer_id).where(Customer.stripe_customer_id == text),
            select(StripeEvent.customer_id).where(
                payload_stripe_customer() == text, StripeEvent.customer_id.is_not(None)
            ),
        )
    pattern = like_prefix(text.lower())
    return select(Customer.customer_id).where(
        or_(
            Customer.customer_id == text,
            func.lower(Customer.email).like(pattern, escape="\\"),
            func.lower(Customer.company_name).like(pattern, escape="\\"),
        )
    )


def list_events(session: Session, wanted: EventFilter, *, limit: int = PAGE_SIZE) -> list[EventRow]:
    """A page of events in the order asked, newest first by default (the payload is not read),
    with their customer's company."""
    order = wanted.order
    columns = SORTS[order.column]
    query = select(
        StripeEvent.id,
        StripeEvent.event_id,
        StripeEvent.type,
        StripeEvent.status,
        StripeEvent.stripe_created,
        StripeEvent.received_at,
        StripeEvent.attempts,
        StripeEvent.last_error,
        StripeEvent.customer_id,
        StripeEvent.source,
        func.coalesce(Customer.company_name, Customer.email).label("customer_name"),
    ).outerjoin(Customer, Customer.customer_id == StripeEvent.customer_id)
    if wanted.type:
        query = query.where(StripeEvent.type == wanted.type)
    if wanted.customer_id:
        query = query.where(StripeEvent.customer_id.in_(_customers_named(wanted.customer_id)))
    if wanted.state:
        query = query.where(StripeEvent.status.in_(STATES[wanted.state]))
    if wanted.before is not None:
        # Where the last page ended: that row's sort values (one primary-key read), and the
        # rows after them in the list's order (a row comparison the sort's index reads).
        last = session.execute(select(*columns).where(StripeEvent.id == wanted.before)).first()
        if last is None:
            raise InvalidInputError("before must be a page cursor from the list", field="before")
        key, bound = tuple_(*columns), tuple_(*last)
        query = query.where(key < bound if order.descending else key > bound)
    ordering = [column.desc() for column in columns] if order.descending else list(columns)
    rows = session.execute(query.order_by(*ordering).limit(limit)).all()
    return [
        EventRow(
            row.id,
            row.event_id,
            row.type,
            row.status,
            datetime.fromtimestamp(row.stripe_created, UTC),
            row.received_at,
            row.attempts,
            row.last_error,
            row.customer_id,
            row.source,
            row.customer_name,
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class EventDetail:
    event: StripeEvent
    attempts: list[StripeEventAttempt]
    # The license an attempt issued (the latest that did), as it is now.
    license: License | None
    customer: Customer | None

    @property
    def payload(self) -> dict[str, Any] | None:
        """None once pruned (STRIPE_EVENT_RETENTION_DAYS after it was processed)."""
        return self.event.payload

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.event.stripe_created, UTC)


def event_detail(session: Session, event_id: str) -> EventDetail:
    event = inbox.get_event(session, event_id)
    if event is None:
        raise NotFoundError(f"no stored Stripe event {event_id!r}", field="eventId")
    attempts = attempts_of(session, event_id)
    issued = next((a.license_jti for a in reversed(attempts) if a.license_jti), None)
    license_row = session.scalar(select(License).where(License.jti == issued)) if issued else None
    customer = (
        session.scalar(select(Customer).where(Customer.customer_id == event.customer_id))
        if event.customer_id
        else None
    )
    return EventDetail(event, attempts, license_row, customer)
