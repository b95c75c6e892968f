"""The next invoice: what Stripe will charge at the period's end, next to our own arithmetic.

Stripe's preview (`POST /v1/invoices/create_preview`) lists the lines it will bill: the flat plan
(in advance, for the next period), the overage device-days its meter summed this period (in
arrears), prorations left by a plan change, discounts. Our estimate is the plan's catalogue price
plus this period's billable device-days (today so far included) times the overage price. When
the two differ by more than a cent, the differences are named: an overage day not sent to
Stripe's meter yet, a price changed in the Dashboard, a proration or discount we do not model.

Stripe is asked with a short timeout and no retries, and its answer kept per customer for
INVOICE_PREVIEW_CACHE_SECONDS; Stripe unreachable gives our estimate with "preview unavailable",
never an error. No row is locked while Stripe answers. `cached_only` asks Stripe nothing: the
customer page draws our estimate (and a kept preview) at once, and the part that asks Stripe is
fetched after it (`pending`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.billing import statuses
from core.billing.catalogue import plan_for_price
from core.billing.gateway import StripeGateway, get_gateway
from core.billing.metering.estimate import OverageEstimate, estimate_overage
from core.billing.metering.meters import is_overage_price
from core.customers.service import get_customer
from core.errors import DomainError
from core.plans import get_plan
from core.settings import get_settings
from core.text import dollars
from models import OverageMeterEvent, Subscription, utcnow

Obj = dict[str, Any]
FLAT, OVERAGE, PRORATION, DISCOUNT, OTHER = "flat", "overage", "proration", "discount", "other"
# Stripe unreachable: asked again after this long, not on every page view.
_UNAVAILABLE_CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class PreviewLine:
    kind: str
    description: str
    amount_cents: int
    quantity: int | None = None


@dataclass(frozen=True, slots=True)
class OurEstimate:
    plan: str
    # The plan's catalogue price; 0 when the period's end ends the subscription, None when the
    # price is set per customer (enterprise).
    flat_cents: int | None
    device_days: int
    # Of those, the device-days already sent to Stripe's meter.
    device_days_sent: int
    unit_cents: int | None
    overage_cents: int

    @property
    def total_cents(self) -> int:
        return (self.flat_cents or 0) + self.overage_cents


@dataclass(frozen=True, slots=True)
class NextInvoice:
    customer_id: str
    # None: no subscription that Stripe will invoice (never subscribed, ended, free trial).
    estimate: OurEstimate | None
    period_ends_at: datetime | None = None
    lines: list[PreviewLine] = field(default_factory=list)
    stripe_total_cents: int | None = None
    stripe_amount_due_cents: int | None = None
    # Why Stripe's preview is not shown ("Stripe did not answer: …"), or None.
    unavailable: str | None = None
    fetched_at: datetime | None = None
    # What makes the two differ, named, when they disagree by more than a cent.
    differences: list[str] = field(default_factory=list)
    # Stripe not asked yet (`cached_only`, nothing kept): our estimate alone, for now.
    pending: bool = False

    @property
    def difference_cents(self) -> int | None:
        if self.stripe_total_cents is None or self.estimate is None:
            return None
        return self.stripe_total_cents - self.estimate.total_cents

    @property
    def disagrees(self) -> bool:
        return self.difference_cents is not None and abs(self.difference_cents) > 1


# -- Stripe's preview, cached per customer -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cached:
    at: float
    fetched_at: datetime
    invoice: Obj | None
    error: str | None


_cache: dict[tuple[str, str], _Cached] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def preview_gateway() -> StripeGateway:
    """A gateway that gives up fast: the console waits on it."""
    settings = get_settings()
    quick = settings.model_copy(
        update={
            "stripe_timeout_seconds": settings.stripe_preview_timeout_seconds,
            "stripe_max_network_retries": 0,
        }
    )
    return get_gateway(quick)


def _stripe_preview(
    gateway: Callable[[], StripeGateway],
    stripe_customer_id: str,
    subscription_id: str,
    refresh: bool,
    cached_only: bool = False,
) -> _Cached | None:
    """Stripe's answer (or why there is none), kept or asked now; None when `cached_only` and
    nothing fresh is kept."""
    key = (stripe_customer_id, subscription_id)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and not refresh:
        keep = (
            get_settings().invoice_preview_cache_seconds
            if cached.invoice is not None
            else _UNAVAILABLE_CACHE_SECONDS
        )
        if now - cached.at < keep:
            return cached
    if cached_only and get_settings().stripe_secret_key:
        return None  # without a key, asking costs no round trip: it says Stripe is not set up
    try:
        invoice = gateway().preview_next_invoice(
            stripe_customer_id=stripe_customer_id, subscription_id=subscription_id
        )
        fetched = _Cached(now, utcnow(), invoice, None)
    except DomainError as exc:
        fetched = _Cached(now, utcnow(), None, exc.message)
    with _cache_lock:
        _cache[key] = fetched
    return fetched


# -- our arithmetic -----------------------------------------------------------------------------


def _estimate(
    session: Session, row: Subscription, now: datetime, overage: OverageEstimate | None
) -> OurEstimate:
    spec = get_plan(row.plan)
    flat = 0 if row.cancel_at_period_end else spec.monthly_price_cents
    if row.current_period_ends_at is None:
        return OurEstimate(row.plan, flat, 0, 0, None, 0)
    overage = overage or estimate_overage(
        session,
        row.customer_id,
        plan=row.plan,
        status=row.status,
        period_ends_at=row.current_period_ends_at,
        period_starts_at=row.current_period_starts_at,
        window=[],
        now=now,
    )
    sent = 0
    if overage.period_start is not None:
        sent = session.scalar(
            select(func.coalesce(func.sum(OverageMeterEvent.value), 0)).where(
                OverageMeterEvent.customer_id == row.customer_id,
                OverageMeterEvent.day >= overage.period_start,
                OverageMeterEvent.sent_at.is_not(None),
            )
        )
    # Days of an earlier period sent late are billed in this one (and were sent).
    sent = int(sent or 0) + sum(days for _, days in overage.carried_over)
    return OurEstimate(
        plan=row.plan,
        flat_cents=flat,
        device_days=overage.period_device_days,
        device_days_sent=sent,
        unit_cents=overage.unit_price_cents,
        overage_cents=overage.estimated_charge_cents,
    )


# -- Stripe's lines, read -----------------------------------------------------------------------


def _line_kind(line: Obj, prices_by_item: dict[str, Obj], flat_price_id: str | None) -> str:
    """A subscription's item is its flat plan or its metered overage (the only two we sell, at
    whatever price the Dashboard set); a line of no item (an invoice item) is someone else's."""
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    if details.get("proration"):
        return PRORATION
    price = prices_by_item.get(str(details.get("subscription_item")))
    on_item = price is not None
    if price is None:
        price_id = (((line.get("pricing") or {}).get("price_details")) or {}).get("price")
        price = {"id": price_id}
    if is_overage_price(price):
        return OVERAGE
    if on_item or price.get("id") == flat_price_id or plan_for_price(price) is not None:
        return FLAT
    return OTHER


def stripe_lines(invoice: Obj, flat_price_id: str | None) -> list[PreviewLine]:
    """Stripe's preview as lines we can read: flat plan, overage, prorations, discounts."""
    sub = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    items = ((sub.get("items") or {}).get("data") or []) if isinstance(sub, dict) else []
    prices_by_item = {str(item["id"]): item.get("price") or {} for item in items}
    lines = [
        PreviewLine(
            kind=_line_kind(line, prices_by_item, flat_price_id),
            description=str(line.get("description") or ""),
            amount_cents=int(line.get("amount") or 0),
            quantity=line.get("quantity"),
        )
        for line in (invoice.get("lines") or {}).get("data") or []
    ]
    discount = sum(int(d.get("amount") or 0) for d in invoice.get("total_discount_amounts") or [])
    if discount:
        lines.append(PreviewLine(DISCOUNT, "Discount", -discount))
    return lines


def _sum(lines: list[PreviewLine], kind: str, what: str = "amount_cents") -> int:
    return sum(int(getattr(line, what) or 0) for line in lines if line.kind == kind)


def differences(lines: list[PreviewLine], ours: OurEstimate) -> list[str]:
    """What makes Stripe's lines differ from our estimate, in an operator's words."""
    found = []
    flat = _sum(lines, FLAT)
    if ours.flat_cents is not None and flat != ours.flat_cents:
        found.append(
            f"flat price: Stripe {dollars(flat)}, our catalogue {dollars(ours.flat_cents)} "
            "(a price changed in the Dashboard?)"
        )
    counted = _sum(lines, OVERAGE, "quantity")
    if counted != ours.device_days:
        note = f"overage: Stripe has {counted} device-day(s), we count {ours.device_days}"
        unsent = ours.device_days - ours.device_days_sent
        if counted < ours.device_days and unsent > 0:
            note += f" ({unsent} not sent to Stripe's meter yet: today so far, or days to send)"
        found.append(note)
    elif ours.unit_cents is not None and _sum(lines, OVERAGE) != counted * ours.unit_cents:
        found.append(
            f"overage price: Stripe charges {dollars(_sum(lines, OVERAGE))} for {counted} "
            f"device-day(s), ours {dollars(counted * ours.unit_cents)}"
        )
    for kind, what in ((PRORATION, "prorations (a plan change)"), (DISCOUNT, "a discount")):
        amount = _sum(lines, kind)
        if amount:
            found.append(f"{what} {dollars(amount)} on Stripe's invoice, not in our estimate")
    found.extend(
        f"line “{line.description}” {dollars(line.amount_cents)} is not one of ours"
        for line in lines
        if line.kind == OTHER
    )
    return found


# -- the service --------------------------------------------------------------------------------


def next_invoice(
    session: Session,
    customer_id: str,
    *,
    gateway: Callable[[], StripeGateway] = preview_gateway,
    refresh: bool = False,
    now: datetime | None = None,
    cached_only: bool = False,
    overage: OverageEstimate | None = None,
) -> NextInvoice:
    """The customer's next invoice: Stripe's preview (cached) beside our estimate. Never raises
    for Stripe: unreachable or refusing, it says why next to our estimate. `cached_only`: Stripe
    is not asked (`pending` when nothing is kept); `overage`: this period's, already read by the
    caller (the customer page's)."""
    now = now or utcnow()
    customer = get_customer(session, customer_id)
    row = session.scalar(select(Subscription).where(Subscription.customer_id == customer_id))
    if (
        row is None
        or not row.stripe_subscription_id
        or not customer.stripe_customer_id
        or row.status in statuses.ENDED
    ):
        return NextInvoice(customer_id, None)
    ours = _estimate(session, row, now, overage)
    cached = _stripe_preview(
        gateway, customer.stripe_customer_id, row.stripe_subscription_id, refresh, cached_only
    )
    if cached is None:
        return NextInvoice(
            customer_id, ours, period_ends_at=row.current_period_ends_at, pending=True
        )
    if cached.invoice is None:
        return NextInvoice(
            customer_id,
            ours,
            period_ends_at=row.current_period_ends_at,
            unavailable=f"Stripe's preview is unavailable: {cached.error}",
            fetched_at=cached.fetched_at,
        )
    lines = stripe_lines(cached.invoice, row.stripe_price_id)
    preview = NextInvoice(
        customer_id,
        ours,
        period_ends_at=_period_end(cached.invoice) or row.current_period_ends_at,
        lines=lines,
        stripe_total_cents=int(cached.invoice.get("total") or 0),
        stripe_amount_due_cents=int(cached.invoice.get("amount_due") or 0),
        fetched_at=cached.fetched_at,
    )
    if preview.disagrees:
        return replace(preview, differences=differences(lines, ours))
    return preview


def _period_end(invoice: Obj) -> datetime | None:
    end = invoice.get("period_end")
    return datetime.fromtimestamp(end, UTC) if isinstance(end, int) else None
