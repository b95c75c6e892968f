"""A subscription's invoices: the invoice API and the invoices updates and cancellations make."""

from __future__ import annotations

from . import objects
from .errors import invalid
from .forms import (
    Params,
    as_bool,
    as_choice,
    as_str,
    check_known,
)
from .ids import add_interval, new_id
from .listing import LIST_PARAMS, in_range, paginate
from .store import Obj
from .sub_shared import (
    SubscriptionParts,
    discount_amount,
    interval_of_sub,
    line_description,
    recurring_amount,
    set_totals,
)

INVOICE_LIST = {
    *LIST_PARAMS, "collection_method", "created", "customer", "customer_account", "due_date",
    "status", "subscription",
}  # fmt: skip


class SubscriptionInvoices(SubscriptionParts):
    def retrieve_invoice(self, params: Params, invoice: str) -> Obj:
        return self.store.get("invoice", invoice)

    def list_invoices(self, params: Params) -> Obj:
        check_known(params, INVOICE_LIST)
        customer = as_str(params, "customer")
        subscription = as_str(params, "subscription")
        status = as_choice(params, "status", ("draft", "open", "paid", "uncollectible", "void"))
        items = [
            i
            for i in self.store.newest_first("invoice")
            if (customer is None or i["customer"] == customer)
            and (subscription is None or i["subscription"] == subscription)
            and (status is None or i["status"] == status)
            and in_range(i["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/invoices", "invoice")

    def finalize_invoice(self, params: Params, invoice: str) -> Obj:
        """A draft becomes `open` (payable); `auto_advance=false` leaves its collection to us.
        Only a draft can be finalized (docs.stripe.com/api/invoices/finalize)."""
        check_known(params, {"auto_advance"})
        found = self.store.get("invoice", invoice)
        if found["status"] != "draft":
            raise invalid(
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_already_finalized",
            )
        # A renewal's draft reads the meter again, as when Stripe finalizes it (sub_renewals).
        self._finalize_draft(found, auto_advance=bool(as_bool(params, "auto_advance")))
        return found

    def void_invoice(self, params: Params, invoice: str) -> Obj:
        """An open or uncollectible invoice becomes `void`: never collected, nothing owed. A
        draft must be finalized first, and a subscription's draft cannot be deleted
        (docs.stripe.com/api/invoices/void, docs.stripe.com/api/invoices/delete)."""
        check_known(params, set())
        found = self.store.get("invoice", invoice)
        if found["status"] not in ("open", "uncollectible"):
            raise invalid(
                "You can only pass in open or uncollectible invoices.", code="invoice_not_open"
            )
        found.update(status="void", amount_remaining=0, next_payment_attempt=None)
        found["status_transitions"]["voided_at"] = self.store.now()
        self.store.emit("invoice.voided", found)
        return found

    def mark_uncollectible(self, params: Params, invoice: str) -> Obj:
        """An open invoice written off: `uncollectible`, no longer retried, still voidable
        (docs.stripe.com/api/invoices/mark_uncollectible)."""
        check_known(params, set())
        found = self.store.get("invoice", invoice)
        if found["status"] != "open":
            raise invalid("You can only pass in open invoices.", code="invoice_not_open")
        found.update(status="uncollectible", next_payment_attempt=None)
        found["status_transitions"]["marked_uncollectible_at"] = self.store.now()
        self.store.emit("invoice.marked_uncollectible", found)
        return found

    def list_invoice_lines(self, params: Params, invoice: str) -> Obj:
        check_known(params, LIST_PARAMS)
        found = self.store.get("invoice", invoice)
        lines = list(found["lines"]["data"])
        return paginate(lines, params, f"/v1/invoices/{invoice}/lines", "line item")

    def _invoice(
        self,
        sub: Obj,
        reason: str,
        period_start: int,
        period_end: int,
        *,
        paid: bool,
        with_discounts: bool = True,
    ) -> Obj:
        invoice_id = new_id("in")
        lines = [self._invoice_line(invoice_id, sub, item) for item in sub["items"]["data"]]
        subtotal = sum(line["amount"] for line in lines)
        discounts = self._discounts_due(sub, period_start) if with_discounts else []
        discount_amounts = [
            {"amount": discount_amount(d["coupon"], subtotal), "discount": d["id"]}
            for d in discounts
        ]
        total = max(0, subtotal - sum(d["amount"] for d in discount_amounts))
        customer = self.store.get("customer", sub["customer"], allow_deleted=True)
        fields = {
            "billing_reason": reason,
            "currency": sub["currency"],
            "customer": sub["customer"],
            "customer_email": customer.get("email"),
            "customer_name": customer.get("name"),
            "discounts": [d["id"] for d in discounts],
            "lines": lines,
            "number": self._invoice_number(customer),
            "period_end": period_end,
            "period_start": period_start,
            "status": "paid" if paid else "open",
            "subscription": sub["id"],
            "subscription_metadata": sub["metadata"],
            "subtotal": subtotal,
            "total": total,
            "total_discount_amounts": discount_amounts,
        }
        invoice = self.store.insert(objects.invoice(invoice_id, self.store.now(), fields))
        self._retire_used_discounts(sub, discounts)
        return invoice

    def _invoice_line(self, invoice_id: str, sub: Obj, item: Obj) -> Obj:
        price = self.store.table("price").get(item["price"]["id"], item["price"])
        product = self.store.table("product").get(price["product"]) or {}
        name = product.get("name") or price["product"]
        trial = sub["status"] == "trialing"
        amount = 0 if trial else (price["unit_amount"] or 0) * item["quantity"]
        fields = {
            "amount": amount,
            "description": line_description(name, price, item["quantity"], trial),
            "metadata": sub["metadata"],
            "period_end": sub["current_period_end"],
            "period_start": sub["current_period_start"],
            "price": price,
            "quantity": item["quantity"],
            "subscription": sub["id"],
            "subscription_item": item["id"],
            "subtotal": amount,
        }
        return objects.invoice_line(new_id("il"), invoice_id, fields)

    def _invoice_number(self, customer: Obj) -> str:
        sequence = customer.get("next_invoice_sequence", 1)
        customer["next_invoice_sequence"] = sequence + 1
        return f"{customer.get('invoice_prefix', 'STANDIN')}-{sequence:04d}"

    def _discounts_due(self, sub: Obj, period_start: int) -> list[Obj]:
        found = []
        for discount_id in sub["discounts"]:
            discount = self.store.snapshot(self.store.table("discount")[discount_id])
            if discount["end"] is None or period_start < discount["end"]:
                found.append(discount)
        return found

    def _retire_used_discounts(self, sub: Obj, applied: list[Obj]) -> None:
        now = self.store.now()
        keep = []
        for discount_id in sub["discounts"]:
            discount = self.store.table("discount")[discount_id]
            once = discount["coupon"]["duration"] == "once"
            used = once and any(d["id"] == discount_id for d in applied)
            expired = discount["end"] is not None and discount["end"] <= now
            if not (used or expired):
                keep.append(discount_id)
        sub["discounts"] = keep

    def _restart_cycle(self, sub: Obj, old_amount: int, proration: str) -> Obj:
        """A change of billing interval (monthly -> yearly) restarts the cycle now and bills
        at once, crediting the unused part of the old period unless prorations are off."""
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        unused = 0
        if proration != "none":
            unused = round(old_amount * max(0.0, (end - now) / max(1, end - start)))
        interval, count = interval_of_sub(sub)
        self.store.hidden_of(sub["id"]).update(
            anchor=now, periods=1, interval=interval, count=count
        )
        sub["billing_cycle_anchor"] = now
        self._set_period(sub, now, add_interval(now, interval, count))
        invoice = self._invoice(sub, "subscription_update", now, now, paid=True)
        set_totals(invoice, max(0, invoice["total"] - unused), clear_discounts=False)
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _proration_invoice(self, sub: Obj, old_amount: int, *, paid: bool = True) -> Obj:
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        remaining = max(0.0, (end - now) / max(1, end - start))
        invoice = self._invoice(
            sub, "subscription_update", now, now, paid=paid, with_discounts=False
        )
        amount = max(0, round((recurring_amount(sub) - old_amount) * remaining))
        for line in invoice["lines"]["data"]:
            line["parent"]["subscription_item_details"]["proration"] = True
            line["period"] = {"start": now, "end": end}
            line.update(amount=0, subtotal=0)
        if invoice["lines"]["data"]:
            first = invoice["lines"]["data"][0]
            first.update(amount=amount, subtotal=amount)
            first["description"] = f"Remaining time on {first['description']}"
        set_totals(invoice, amount)
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _pend_proration(self, sub: Obj, old_amount: int) -> None:
        """`create_prorations`: the difference for the rest of the period waits for the next
        invoice (a credit when negative); nothing is charged now."""
        if sub["status"] == "trialing":
            return
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        remaining = max(0.0, (end - now) / max(1, end - start))
        hidden = self.store.hidden_of(sub["id"])
        difference = round((recurring_amount(sub) - old_amount) * remaining)
        hidden["pending_proration"] = hidden.get("pending_proration", 0) + difference

    def _settle(self, sub: Obj, *, invoice_now: bool, prorate: bool) -> Obj | None:
        """What cancelling now bills: with `invoice_now` a final invoice of the pending
        prorations, less (with `prorate`) the unused time, a credit going to the customer's
        balance. Without `invoice_now` the pending prorations are dropped, as Stripe does."""
        hidden = self.store.hidden_of(sub["id"])
        pending = hidden.pop("pending_proration", 0)
        if not invoice_now or sub["status"] == "trialing":
            return None
        now = self.store.now()
        start, end = sub["current_period_start"], sub["current_period_end"]
        unused = 0
        if prorate:
            unused = round(recurring_amount(sub) * max(0.0, (end - now) / max(1, end - start)))
        amount = pending - unused
        invoice = self._invoice(
            sub, "subscription_update", now, now, paid=True, with_discounts=False
        )
        for line in invoice["lines"]["data"]:
            line["parent"]["subscription_item_details"]["proration"] = True
            line["period"] = {"start": now, "end": end}
            line.update(amount=0, subtotal=0)
        if invoice["lines"]["data"]:
            invoice["lines"]["data"][0].update(amount=amount, subtotal=amount)
        set_totals(invoice, max(0, amount))
        if amount < 0:
            customer = self.store.get("customer", sub["customer"], allow_deleted=True)
            customer["balance"] = customer.get("balance", 0) + amount
        # "invoice_now: … a final invoice that invoices for any un-invoiced metered usage and
        # new/pending proration invoice items" (docs.stripe.com/api/subscriptions/cancel).
        self.usage.add_lines(invoice, self.usage.period_lines(sub, start, now + 1))
        if invoice["amount_due"] > 0 and self.store.hidden_of(sub["customer"]).get("declines"):
            # Charged like any invoice: a declined card leaves it open.
            invoice.update(status="open", amount_paid=0, attempted=True, attempt_count=1)
            invoice.update(amount_remaining=invoice["amount_due"])
            invoice["status_transitions"]["paid_at"] = None
        sub["latest_invoice"] = invoice["id"]
        return invoice
