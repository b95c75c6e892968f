"""What the subscription modules share: the mixins' base and small helpers on prices and totals."""

from __future__ import annotations

from typing import Any

from .catalog import Catalog
from .errors import invalid
from .forms import Params
from .invoice_items import InvoiceItems
from .store import Obj, Store
from .usage_billing import UsageBilling

LIVE = ("active", "past_due", "trialing", "unpaid", "incomplete", "paused")


class SubscriptionParts:
    """The state every part of `Subscriptions` works on (set by `Subscriptions.__init__`)."""

    store: Store
    catalog: Catalog
    usage: UsageBilling
    invoice_items: InvoiceItems


def as_entry(raw: Any, label: str) -> Params:
    if not isinstance(raw, dict):
        raise invalid(f"Invalid hash: {label}", label)
    return raw


def interval_of(price: Obj) -> tuple[str, int]:
    recurring = price["recurring"] or {}
    return recurring.get("interval", "month"), recurring.get("interval_count", 1)


def interval_of_sub(sub: Obj) -> tuple[str, int]:
    return interval_of(sub["items"]["data"][0]["price"])


def recurring_amount(sub: Obj) -> int:
    return sum((i["price"]["unit_amount"] or 0) * i["quantity"] for i in sub["items"]["data"])


def discount_amount(coupon: Obj, subtotal: int) -> int:
    """What a coupon takes off `subtotal` (percent rounded half-up to whole cents)."""
    if coupon.get("percent_off") is not None:
        return min(subtotal, int(subtotal * coupon["percent_off"] / 100 + 0.5))
    return min(subtotal, coupon.get("amount_off") or 0)


def set_totals(invoice: Obj, amount: int, *, clear_discounts: bool = True) -> None:
    paid = invoice["status"] == "paid"
    if clear_discounts:
        invoice.update(subtotal=amount, subtotal_excluding_tax=amount)
        invoice.update(discounts=[], total_discount_amounts=[])
    invoice.update(total=amount, total_excluding_tax=amount, amount_due=amount)
    invoice.update(amount_paid=amount if paid else 0, amount_remaining=0 if paid else amount)


def line_description(name: str, price: Obj, quantity: int, trial: bool) -> str:
    if trial:
        return f"Trial period for {name}"
    amount = (price["unit_amount"] or 0) / 100
    currency = price["currency"]
    shown = f"${amount:,.2f}" if currency == "usd" else f"{amount:,.2f} {currency.upper()}"
    interval = (price["recurring"] or {}).get("interval", "month")
    return f"{quantity} × {name} (at {shown} / {interval})"
