"""`POST /v1/invoices/create_preview`: the next invoice of a subscription, as Stripe previews it.

What Stripe does, kept here (docs.stripe.com/api/invoices/create_preview, pinned version; since
2025-03-31.basil a preview needs `subscription` or other subscription details, the old
`GET /v1/invoices/upcoming` is gone):

- the preview is an invoice object that is not stored: its id starts with `upcoming_in_`
  (stripe-python's `Invoice.id` docs), `status` draft, `billing_reason` "upcoming", no number,
  no hosted page or PDF, nothing finalized or paid; its line ids start with `il_tmp_`;
- a licensed (flat) price is billed in advance, so its line covers the *next* period; a metered
  price is billed in arrears: its line covers the current period, its quantity is what the meter
  summed for the customer over that period (events by their `timestamp`), counted as the
  invoice will count it (`usage_billing.UsageBilling`), with the usage of metered prices removed
  this period that waits for this invoice;
- prorations waiting from a `create_prorations` change are lines with
  `parent.subscription_item_details.proration` true; the subscription's discounts apply;
- a subscription that set to cancel at period end has no next period: only its usage is billed;
  an ended one has no upcoming invoice (400 `invoice_upcoming_none`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from . import objects
from .errors import StripeError, invalid, missing_param
from .forms import Params, as_str, check_known
from .ids import add_interval, new_id, random_token
from .meters import Meters
from .store import Obj, Store
from .subscriptions import Subscriptions, discount_amount

PREVIEW_CREATE = (
    "automatic_tax",
    "currency",
    "customer",
    "customer_account",
    "customer_details",
    "discounts",
    "expand",
    "invoice_items",
    "issuer",
    "on_behalf_of",
    "preview_mode",
    "schedule",
    "schedule_details",
    "subscription",
    "subscription_details",
)
_ENDED = ("canceled", "incomplete_expired")

Handler = Callable[..., dict[str, Any]]


class InvoicePreviews:
    def __init__(self, store: Store, subscriptions: Subscriptions, meters: Meters) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self.meters = meters

    def routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        from .routes import _compile

        return [("POST", _compile("/v1/invoices/create_preview"), self.create_preview)]

    def create_preview(self, params: Params) -> Obj:
        check_known(params, PREVIEW_CREATE)
        subscription_id = as_str(params, "subscription")
        if subscription_id is None:
            # The stand-in previews an existing subscription's next invoice, the case used.
            raise missing_param("subscription")
        sub = self.store.referenced("subscription", subscription_id, "subscription")
        customer_id = as_str(params, "customer")
        if customer_id is not None and customer_id != sub["customer"]:
            raise invalid(
                f"The subscription {subscription_id} does not belong to customer {customer_id}.",
                "subscription",
            )
        if sub["status"] in _ENDED:
            raise _no_upcoming(sub["customer"])
        invoice_id = f"upcoming_in_{random_token(24)}"
        lines = self._lines(invoice_id, sub)
        if not lines:
            raise _no_upcoming(sub["customer"])
        return self._invoice(invoice_id, sub, lines)

    # -- lines -----------------------------------------------------------------------------

    def _lines(self, invoice_id: str, sub: Obj) -> list[Obj]:
        start, end = sub["current_period_start"], sub["current_period_end"]
        hidden = self.store.hidden_of(sub["id"])
        next_end = add_interval(end, hidden.get("interval", "month"), hidden.get("count", 1))
        ending = bool(sub["cancel_at_period_end"]) or sub.get("cancel_at") is not None
        lines = []
        for item in sub["items"]["data"]:
            price = self.store.table("price").get(item["price"]["id"], item["price"])
            metered = (price.get("recurring") or {}).get("usage_type") == "metered"
            if metered:
                quantity = self._metered_quantity(sub, item, price, start, end)
                lines.append(self._line(invoice_id, sub, item, price, quantity, (start, end)))
            elif not ending:
                lines.append(
                    self._line(invoice_id, sub, item, price, item["quantity"], (end, next_end))
                )
        # Usage of metered prices removed this period, kept for this invoice (flexible mode).
        for kept in hidden.get("pending_usage", []):
            line = copy.deepcopy(kept)
            line.update(id=new_id("il_tmp"), invoice=invoice_id)
            lines.append(line)
        pending = hidden.get("pending_proration", 0)
        if pending and sub["items"]["data"]:
            lines.insert(0, self._proration_line(invoice_id, sub, pending))
        return lines

    def _metered_quantity(self, sub: Obj, item: Obj, price: Obj, start: int, end: int) -> int:
        """What the invoice closing this period will bill of the item's meter: counted since
        the period began, or since the item took this price (`usage_billing`)."""
        usage = self.subscriptions.usage
        since = max(start, usage._since(item["id"]))
        return usage.usage(sub, price, since, end)

    def _line(
        self,
        invoice_id: str,
        sub: Obj,
        item: Obj,
        price: Obj,
        quantity: int,
        period: tuple[int, int],
    ) -> Obj:
        product = self.store.table("product").get(price["product"]) or {}
        name = product.get("name") or price["product"]
        amount = (price["unit_amount"] or 0) * quantity
        interval = (price["recurring"] or {}).get("interval", "month")
        shown = f"${(price['unit_amount'] or 0) / 100:,.2f}"
        fields = {
            "amount": amount,
            "description": f"{quantity} × {name} (at {shown} / {interval})",
            "metadata": sub["metadata"],
            "period_start": period[0],
            "period_end": period[1],
            "price": price,
            "quantity": quantity,
            "subscription": sub["id"],
            "subscription_item": item["id"],
            "subtotal": amount,
        }
        return objects.invoice_line(new_id("il_tmp"), invoice_id, fields)

    def _proration_line(self, invoice_id: str, sub: Obj, amount: int) -> Obj:
        """The difference a `create_prorations` change left for the next invoice (a credit when
        negative), on the flat item, from the change to the period's end."""
        item = sub["items"]["data"][0]
        price = self.store.table("price").get(item["price"]["id"], item["price"])
        now = self.store.now()
        period = (now, sub["current_period_end"])
        line = self._line(invoice_id, sub, item, price, item["quantity"], period)
        line.update(amount=amount, subtotal=amount)
        what = "Remaining time on" if amount > 0 else "Unused time on"
        line["description"] = f"{what} {line['description']} after a plan change"
        line["parent"]["subscription_item_details"]["proration"] = True
        return line

    # -- the invoice -------------------------------------------------------------------------

    def _invoice(self, invoice_id: str, sub: Obj, lines: list[Obj]) -> Obj:
        subtotal = sum(line["amount"] for line in lines)
        discounts = self.subscriptions._discounts_due(sub, sub["current_period_end"])
        discount_amounts = [
            {"amount": discount_amount(d["coupon"], max(0, subtotal)), "discount": d["id"]}
            for d in discounts
        ]
        total = max(0, subtotal - sum(d["amount"] for d in discount_amounts))
        customer = self.store.get("customer", sub["customer"], allow_deleted=True)
        fields = {
            "billing_reason": "upcoming",
            "currency": sub["currency"],
            "customer": sub["customer"],
            "customer_email": customer.get("email"),
            "customer_name": customer.get("name"),
            "discounts": [d["id"] for d in discounts],
            "lines": lines,
            "number": None,
            "period_end": sub["current_period_end"],
            "period_start": sub["current_period_start"],
            "status": "draft",
            "subscription": sub["id"],
            "subscription_metadata": sub["metadata"],
            "subtotal": subtotal,
            "total": total,
            "total_discount_amounts": discount_amounts,
            "attempt_count": 0,
            "attempted": False,
        }
        invoice = objects.invoice(invoice_id, self.store.now(), fields)
        # Nothing of a preview exists anywhere yet: no page, no PDF, no finalization, no event.
        invoice.update(
            hosted_invoice_url=None,
            invoice_pdf=None,
            effective_at=None,
            webhooks_delivered_at=None,
            next_payment_attempt=sub["current_period_end"],
            amount_remaining=total,
        )
        invoice["status_transitions"] = {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        }
        return copy.deepcopy(invoice)


def _no_upcoming(customer_id: str) -> StripeError:
    return StripeError(
        400, f"No upcoming invoices for customer: {customer_id}", code="invoice_upcoming_none"
    )
