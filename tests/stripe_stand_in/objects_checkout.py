"""Builders of Checkout's object shapes (sessions, their line items); re-exported by `objects`."""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


def checkout_session(object_id: str, created: int, fields: Obj) -> Obj:
    ui_mode = fields.get("ui_mode") or "hosted"
    hosted = ui_mode == "hosted"
    return {
        "id": object_id,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": fields.get("allow_promotion_codes"),
        "amount_subtotal": fields["amount_subtotal"],
        "amount_total": fields["amount_total"],
        "automatic_tax": {
            "enabled": bool(fields.get("automatic_tax_enabled")),
            "liability": None,
            "provider": None,
            "status": None,
        },
        "billing_address_collection": fields.get("billing_address_collection"),
        "cancel_url": fields.get("cancel_url"),
        "client_reference_id": fields.get("client_reference_id"),
        "client_secret": None if hosted else f"{object_id}_secret_{object_id[-24:]}",
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": fields["currency"],
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": fields.get("customer"),
        "customer_creation": None if fields.get("customer") else "always",
        "customer_details": _customer_details(fields),
        "customer_email": fields.get("customer_email"),
        "discounts": fields.get("discounts") or [],
        "expires_at": fields["expires_at"],
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": fields.get("locale"),
        "metadata": fields.get("metadata") or {},
        "mode": fields["mode"],
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": fields.get("payment_method_collection") or "always",
        "payment_method_types": fields.get("payment_method_types") or ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "return_url": fields.get("return_url"),
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": fields.get("success_url"),
        "total_details": {
            "amount_discount": fields["amount_subtotal"] - fields["amount_total"],
            "amount_shipping": 0,
            "amount_tax": 0,
        },
        "ui_mode": ui_mode,
        "url": f"https://checkout.stripe.com/c/pay/{object_id}" if hosted else None,
    }


def _customer_details(fields: Obj) -> Obj | None:
    email = fields.get("customer_email")
    if email is None:
        return None
    return {
        "address": None,
        "email": email,
        "name": None,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def completed_customer_details(email: str | None, name: str | None) -> Obj:
    return {
        "address": {
            "city": None,
            "country": "US",
            "line1": None,
            "line2": None,
            "postal_code": "94103",
            "state": None,
        },
        "email": email,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def checkout_item(object_id: str, price_obj: Obj, quantity: int, description: str) -> Obj:
    subtotal = (price_obj["unit_amount"] or 0) * quantity
    return {
        "id": object_id,
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": subtotal,
        "amount_tax": 0,
        "amount_total": subtotal,
        "currency": price_obj["currency"],
        "description": description,
        "price": copy.deepcopy(price_obj),
        "quantity": quantity,
    }
