"""Builders for Stripe's object shapes (field names and JSON types as in the API reference).

Where an API version moved a field, both places are filled so clients of either version
work: `current_period_start/end` on the subscription and on each item, `subscription` on
the invoice and under `parent.subscription_details`, `coupon` and `promotion.coupon` on a
promotion code, `coupon` and `source.coupon` on a discount.

The catalogue's shapes live in `objects_catalog`, Checkout's in `objects_checkout`; all are
reachable from here.
"""

from __future__ import annotations

import copy
from typing import Any

from .objects_catalog import (
    coupon,
    customer,
    discount,
    plan_from_price,
    price,
    product,
    promotion_code,
    recurring,
)
from .objects_checkout import checkout_item, checkout_session, completed_customer_details

Obj = dict[str, Any]


def list_object(data: list[Obj], url: str, has_more: bool = False) -> Obj:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def deleted(object_id: str, object_name: str) -> Obj:
    return {"id": object_id, "object": object_name, "deleted": True}


def billing_mode(mode: str, created: int) -> Obj:
    if mode == "classic":
        return {"flexible": None, "type": "classic", "updated_at": None}
    return {
        "flexible": {"proration_discounts": "included"},
        "type": "flexible",
        "updated_at": created,
    }


def subscription(object_id: str, created: int, fields: Obj) -> Obj:
    return {
        "id": object_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": fields["billing_cycle_anchor"],
        "billing_cycle_anchor_config": None,
        # Flexible unless asked otherwise: the default for subscriptions created under
        # 2025-09-30.clover and later (docs.stripe.com/changelog/clover/2025-09-30/
        # billing-mode-default-flexible), the pinned version among them.
        "billing_mode": billing_mode("flexible", created),
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": fields["currency"],
        "current_period_end": fields["current_period_end"],
        "current_period_start": fields["current_period_start"],
        "customer": fields["customer"],
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": fields.get("description"),
        "discounts": fields.get("discounts") or [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": list_object(fields["items"], f"/v1/subscription_items?subscription={object_id}"),
        "latest_invoice": None,
        "livemode": False,
        "metadata": fields.get("metadata") or {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": fields["status"],
        "test_clock": None,
        "transfer_data": None,
        "trial_end": fields.get("trial_end"),
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": fields.get("trial_start"),
    }


def subscription_item(
    object_id: str, created: int, subscription_id: str, price_obj: Obj, quantity: int, period: Obj
) -> Obj:
    return {
        "id": object_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period["end"],
        "current_period_start": period["start"],
        "discounts": [],
        "metadata": {},
        "plan": plan_from_price(price_obj),
        "price": copy.deepcopy(price_obj),
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def invoice(object_id: str, created: int, fields: Obj) -> Obj:
    subtotal, total = fields["subtotal"], fields["total"]
    paid = fields["status"] == "paid"
    number = fields["number"]
    return {
        "id": object_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe stand-in",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": total if paid else 0,
        "amount_remaining": 0 if paid else total,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": fields.get("attempt_count", 1 if total else 0),
        "attempted": fields.get("attempted", bool(total)),
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": fields["billing_reason"],
        "collection_method": "charge_automatically",
        "created": created,
        "currency": fields["currency"],
        "custom_fields": None,
        "customer": fields["customer"],
        "customer_address": None,
        "customer_email": fields.get("customer_email"),
        "customer_name": fields.get("customer_name"),
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": fields.get("discounts") or [],
        "due_date": None,
        "effective_at": created,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_standin/test_{object_id[3:]}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_standin/test_{object_id[3:]}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object(fields["lines"], f"/v1/invoices/{object_id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None if paid else created + 3 * 86400,
        "number": number,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {
                "metadata": copy.deepcopy(fields.get("subscription_metadata") or {}),
                "subscription": fields["subscription"],
            },
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": fields["period_end"],
        "period_start": fields["period_start"],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": fields["status"],
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": created if paid else None,
            "voided_at": None,
        },
        "subscription": fields["subscription"],
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": fields.get("total_discount_amounts") or [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }


def invoice_line(object_id: str, invoice_id: str, fields: Obj) -> Obj:
    price_obj = fields["price"]
    return {
        "id": object_id,
        "object": "line_item",
        "amount": fields["amount"],
        "currency": price_obj["currency"],
        "description": fields["description"],
        "discount_amounts": fields.get("discount_amounts") or [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": copy.deepcopy(fields.get("metadata") or {}),
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": fields.get("proration", False),
                "proration_details": {"credited_items": None},
                "subscription": fields["subscription"],
                "subscription_item": fields["subscription_item"],
            },
            "type": "subscription_item_details",
        },
        "period": {"end": fields["period_end"], "start": fields["period_start"]},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
            "type": "price_details",
            "unit_amount_decimal": price_obj["unit_amount_decimal"],
        },
        "quantity": fields["quantity"],
        "subscription": fields["subscription"],
        "subtotal": fields["subtotal"],
        "taxes": [],
    }


def event(
    object_id: str,
    created: int,
    event_type: str,
    data_object: Obj,
    *,
    api_version: str,
    previous: Obj | None,
    request: Obj,
) -> Obj:
    data: Obj = {"object": copy.deepcopy(data_object)}
    if previous is not None:
        data["previous_attributes"] = copy.deepcopy(previous)
    return {
        "id": object_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": dict(request),
        "type": event_type,
    }


__all__ = [
    "Obj",
    "billing_mode",
    "checkout_item",
    "checkout_session",
    "completed_customer_details",
    "coupon",
    "customer",
    "deleted",
    "discount",
    "event",
    "invoice",
    "invoice_line",
    "list_object",
    "plan_from_price",
    "price",
    "product",
    "promotion_code",
    "recurring",
    "subscription",
    "subscription_item",
]
