"""Builders of the catalogue's and customers' object shapes (customers, products, prices,
coupons, promotion codes, discounts); re-exported by `objects`."""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


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
