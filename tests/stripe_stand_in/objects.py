"""Builders for Stripe's object shapes (field names and JSON types as in the API reference).

Where an API version moved a field, both places are filled so clients of either version
work: `current_period_start/end` on the subscription and on each item, `subscription` on
the invoice and under `parent.subscription_details`, `coupon` and `promotion.coupon` on a
promotion code, `coupon` and `source.coupon` on a discount.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


def list_object(data: list[Obj], url: str, has_more: bool = False) -> Obj:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def deleted(object_id: str, object_name: str) -> Obj:
    return {"id": object_id, "object": object_name, "deleted": True}


def customer(object_id: str, created: int, fields: Obj, invoice_prefix: str) -> Obj:
    return {
        "id": object_id,
        "object": "customer",
        "address": fields.get("address"),
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": fields.get("description"),
        "discount": None,
        "email": fields.get("email"),
        "invoice_prefix": invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": fields.get("metadata") or {},
        "name": fields.get("name"),
        "next_invoice_sequence": 1,
        "phone": fields.get("phone"),
        "preferred_locales": fields.get("preferred_locales") or [],
        "shipping": None,
        "tax_exempt": fields.get("tax_exempt") or "none",
        "test_clock": None,
    }


def product(object_id: str, created: int, fields: Obj) -> Obj:
    return {
        "id": object_id,
        "object": "product",
        "active": fields.get("active", True),
        "created": created,
        "default_price": None,
        "description": fields.get("description"),
        "images": fields.get("images") or [],
        "livemode": False,
        "marketing_features": [],
        "metadata": fields.get("metadata") or {},
        "name": fields["name"],
        "package_dimensions": None,
        "shippable": fields.get("shippable"),
        "statement_descriptor": fields.get("statement_descriptor"),
        "tax_code": fields.get("tax_code"),
        "type": "service",
        "unit_label": fields.get("unit_label"),
        "updated": created,
        "url": fields.get("url"),
    }


def recurring(interval: str, interval_count: int, usage_type: str, trial_days: int | None) -> Obj:
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": None,
        "trial_period_days": trial_days,
        "usage_type": usage_type,
    }


def price(object_id: str, created: int, fields: Obj) -> Obj:
    unit_amount = fields.get("unit_amount")
    return {
        "id": object_id,
        "object": "price",
        "active": fields.get("active", True),
        "billing_scheme": "per_unit",
        "created": created,
        "currency": fields["currency"],
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": fields.get("lookup_key"),
        "metadata": fields.get("metadata") or {},
        "nickname": fields.get("nickname"),
        "product": fields["product"],
        "recurring": fields.get("recurring"),
        "tax_behavior": fields.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if fields.get("recurring") else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def plan_from_price(price_obj: Obj) -> Obj:
    """The legacy `plan` view of a recurring price, as still sent on subscription items."""
    recurring_part = price_obj.get("recurring") or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": recurring_part.get("interval"),
        "interval_count": recurring_part.get("interval_count", 1),
        "livemode": False,
        "metadata": price_obj["metadata"],
        "meter": None,
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring_part.get("trial_period_days"),
        "usage_type": recurring_part.get("usage_type", "licensed"),
    }


def coupon(object_id: str, created: int, fields: Obj) -> Obj:
    return {
        "id": object_id,
        "object": "coupon",
        "amount_off": fields.get("amount_off"),
        "created": created,
        "currency": fields.get("currency"),
        "duration": fields.get("duration") or "once",
        "duration_in_months": fields.get("duration_in_months"),
        "livemode": False,
        "max_redemptions": fields.get("max_redemptions"),
        "metadata": fields.get("metadata") or {},
        "name": fields.get("name"),
        "percent_off": fields.get("percent_off"),
        "redeem_by": fields.get("redeem_by"),
        "times_redeemed": 0,
        "valid": True,
    }


def promotion_code(object_id: str, created: int, fields: Obj, coupon_obj: Obj) -> Obj:
    return {
        "id": object_id,
        "object": "promotion_code",
        "active": fields.get("active", True),
        "code": fields["code"],
        "coupon": copy.deepcopy(coupon_obj),
        "created": created,
        "customer": fields.get("customer"),
        "expires_at": fields.get("expires_at"),
        "livemode": False,
        "max_redemptions": fields.get("max_redemptions"),
        "metadata": fields.get("metadata") or {},
        "promotion": {"coupon": coupon_obj["id"], "type": "coupon"},
        "restrictions": {
            "currency_options": {},
            "first_time_transaction": False,
            "minimum_amount": None,
            "minimum_amount_currency": None,
        },
        "times_redeemed": 0,
    }


def discount(
    object_id: str,
    start: int,
    coupon_obj: Obj,
    *,
    customer: str | None,
    promotion_code: str | None,
    subscription: str | None,
    checkout_session: str | None,
    end: int | None,
) -> Obj:
    return {
        "id": object_id,
        "object": "discount",
        "checkout_session": checkout_session,
        "coupon": copy.deepcopy(coupon_obj),
        "customer": customer,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": promotion_code,
        "source": {"coupon": coupon_obj["id"], "type": "coupon"},
        "start": start,
        "subscription": subscription,
        "subscription_item": None,
    }


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
