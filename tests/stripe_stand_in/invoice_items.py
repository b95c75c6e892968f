"""One-off invoice items and invoices made by hand (`POST /v1/invoiceitems`, `POST /v1/invoices`).

Stripe's rules the stand-in keeps: an invoice item without `invoice` waits on the customer as a
pending invoice item (docs.stripe.com/api/invoiceitems/create); a new invoice takes the
customer's pending items only with `pending_invoice_items_behavior=include` (the default is
`exclude`, docs.stripe.com/api/invoices/create); it starts as a draft, and with `auto_advance`
Stripe finalizes and charges it about an hour later.
"""

from __future__ import annotations

import copy

from . import objects
from .errors import invalid
from .forms import Params, as_bool, as_choice, as_dict, as_int, as_metadata, as_str, check_known
from .ids import new_id
from .store import Obj, Store

ITEM_CREATE = {
    "amount", "currency", "customer", "description", "discountable", "metadata", "period",
    "subscription",
}  # fmt: skip
INVOICE_CREATE = {
    "auto_advance", "collection_method", "currency", "customer", "description", "metadata",
    "pending_invoice_items_behavior", "subscription",
}  # fmt: skip


class InvoiceItems:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create_invoice_item(self, params: Params) -> Obj:
        check_known(params, ITEM_CREATE)
        customer = as_str(params, "customer", required=True) or ""
        self.store.referenced("customer", customer, "customer")
        amount = as_int(params, "amount")
        if amount is None:
            raise invalid("Missing required param: amount.", "amount")
        currency = as_str(params, "currency", required=True) or ""
        now = self.store.now()
        period = as_dict(params, "period") or {}
        start = as_int(period, "start", param="period[start]") or now
        end = as_int(period, "end", param="period[end]") or now
        item = {
            "id": new_id("ii"),
            "object": "invoiceitem",
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "date": now,
            "description": as_str(params, "description"),
            "discountable": as_bool(params, "discountable") is not False,
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": as_metadata(params),
            "parent": None,
            "period": {"start": start, "end": end},
            "pricing": None,
            "proration": False,
            "quantity": 1,
            "test_clock": None,
        }
        return self.store.insert(item)

    def create_invoice(self, params: Params) -> Obj:
        check_known(params, INVOICE_CREATE)
        customer_id = as_str(params, "customer", required=True) or ""
        customer = self.store.referenced("customer", customer_id, "customer")
        behavior = as_choice(params, "pending_invoice_items_behavior", ("exclude", "include"))
        invoice_id = new_id("in")
        pending = [
            item
            for item in self.store.table("invoiceitem").values()
            if item["customer"] == customer_id and item["invoice"] is None
        ]
        if behavior != "include":
            pending = []
        lines = [_line(invoice_id, item) for item in pending]
        for item in pending:
            item["invoice"] = invoice_id
        total = sum(line["amount"] for line in lines)
        now = self.store.now()
        sequence = customer.get("next_invoice_sequence", 1)
        customer["next_invoice_sequence"] = sequence + 1
        currency = as_str(params, "currency") or (pending[0]["currency"] if pending else "usd")
        fields = {
            "billing_reason": "manual",
            "currency": currency,
            "customer": customer_id,
            "customer_email": customer.get("email"),
            "customer_name": customer.get("name"),
            "lines": lines,
            "number": None,
            "period_end": now,
            "period_start": now,
            "status": "draft",
            "subscription": None,
            "subtotal": total,
            "total": total,
            "attempted": False,
            "attempt_count": 0,
        }
        invoice = objects.invoice(invoice_id, now, fields)
        invoice.update(
            auto_advance=as_bool(params, "auto_advance") is not False,
            description=as_str(params, "description"),
            metadata=as_metadata(params),
            parent=None,
        )
        invoice["status_transitions"]["finalized_at"] = None
        self.store.insert(invoice)
        self.store.emit("invoice.created", invoice)
        return invoice


def _line(invoice_id: str, item: Obj) -> Obj:
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": copy.deepcopy(item["metadata"]),
        "parent": {
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        },
        "period": copy.deepcopy(item["period"]),
        "pretax_credit_amounts": [],
        "pricing": None,
        "quantity": 1,
        "subscription": None,
        "subtotal": item["amount"],
        "taxes": [],
    }
