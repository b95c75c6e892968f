"""Coupons and promotion codes, and what checkout and subscriptions ask of them."""

from __future__ import annotations

import re
from typing import Any

from . import objects
from .catalog_parts import CatalogParts
from .errors import StripeError, invalid, missing_param, only_one_of
from .forms import (
    Params,
    as_bool,
    as_choice,
    as_dict,
    as_float,
    as_int,
    as_metadata,
    as_str,
    check_known,
    merge_metadata,
)
from .ids import new_id, promotion_code_text, random_token
from .listing import LIST_PARAMS, in_range, paginate
from .store import Obj

COUPON_CREATE = {
    "amount_off", "applies_to", "currency", "currency_options", "duration",
    "duration_in_months", "id", "max_redemptions", "metadata", "name", "percent_off",
    "redeem_by",
}  # fmt: skip
COUPON_UPDATE = {"currency_options", "metadata", "name"}
COUPON_LIST = {*LIST_PARAMS, "created"}
# `coupon` is the pre-2025-09 way of naming the coupon; `promotion[coupon]` is today's.
PROMO_CREATE = {
    "active", "code", "coupon", "customer", "customer_account", "expires_at",
    "max_redemptions", "metadata", "promotion", "restrictions",
}  # fmt: skip
PROMO_UPDATE = {"active", "metadata", "restrictions"}
PROMO_LIST = {*LIST_PARAMS, "active", "code", "coupon", "created", "customer", "customer_account"}
_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,500}$")


class Discounts(CatalogParts):
    # -- coupons -----------------------------------------------------------------------

    def create_coupon(self, params: Params) -> Obj:
        check_known(params, COUPON_CREATE)
        coupon_id = as_str(params, "id") or random_token(8)
        if coupon_id in self.store.table("coupon"):
            raise StripeError(
                400, "Coupon already exists.", param="id", code="resource_already_exists"
            )
        obj = objects.coupon(coupon_id, self.store.now(), _coupon_fields(params))
        return self._created(obj, "coupon.created")

    def retrieve_coupon(self, params: Params, coupon: str) -> Obj:
        return self.store.get("coupon", coupon, allow_deleted=True)

    def update_coupon(self, params: Params, coupon: str) -> Obj:
        check_known(params, COUPON_UPDATE)
        obj = self.store.get("coupon", coupon)
        before = self.store.snapshot(obj)
        if "name" in params:
            obj["name"] = as_str(params, "name")
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "coupon.updated")

    def delete_coupon(self, params: Params, coupon: str) -> Obj:
        obj = self.store.get("coupon", coupon)
        obj["valid"] = False
        return self._deleted(obj, "coupon.deleted")

    def list_coupons(self, params: Params) -> Obj:
        check_known(params, COUPON_LIST)
        items = [
            c
            for c in self.store.newest_first("coupon")
            if in_range(c["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/coupons", "coupon")

    # -- promotion codes ---------------------------------------------------------------

    def create_promotion_code(self, params: Params) -> Obj:
        check_known(params, PROMO_CREATE)
        coupon = self._promotion_coupon(params)
        code = as_str(params, "code") or promotion_code_text()
        if not _CODE_PATTERN.match(code):
            raise invalid(
                "Promotion codes may only contain letters, digits, dashes and underscores.",
                "code",
            )
        active = as_bool(params, "active") is not False
        if active:
            self._ensure_code_free(code, None)
        customer = as_str(params, "customer")
        if customer is not None:
            self.store.referenced("customer", customer, "customer")
        fields = {
            "active": active,
            "code": code,
            "customer": customer,
            "expires_at": as_int(params, "expires_at"),
            "max_redemptions": as_int(params, "max_redemptions", minimum=1),
            "metadata": as_metadata(params),
        }
        obj = objects.promotion_code(new_id("promo"), self.store.now(), fields, coupon)
        _apply_restrictions(obj, as_dict(params, "restrictions"))
        return self._created(obj, "promotion_code.created")

    def _promotion_coupon(self, params: Params) -> Obj:
        promotion = as_dict(params, "promotion") or {}
        legacy = as_str(params, "coupon")
        nested = as_str(promotion, "coupon", param="promotion[coupon]")
        if legacy and nested:
            raise only_one_of("coupon", "promotion[coupon]")
        if not (legacy or nested):
            raise missing_param("promotion[coupon]")
        param = "coupon" if legacy else "promotion[coupon]"
        coupon = self.store.referenced("coupon", legacy or nested, param)
        if not coupon["valid"]:
            raise invalid(f"Coupon {coupon['id']} is no longer valid.", param)
        return coupon

    def _ensure_code_free(self, code: str, owner: str | None) -> None:
        for promo in self.store.newest_first("promotion_code"):
            taken = promo["active"] and promo["code"].lower() == code.lower()
            if taken and promo["id"] != owner:
                raise invalid(
                    f"An active promotion code with `code: {code}` already exists.", "code"
                )

    def retrieve_promotion_code(self, params: Params, promotion_code: str) -> Obj:
        return self.store.get("promotion_code", promotion_code)

    def update_promotion_code(self, params: Params, promotion_code: str) -> Obj:
        check_known(params, PROMO_UPDATE)
        obj = self.store.get("promotion_code", promotion_code)
        before = self.store.snapshot(obj)
        if "active" in params:
            active = as_bool(params, "active")
            if active:
                self._ensure_code_free(obj["code"], promotion_code)
            obj["active"] = bool(active)
        _apply_restrictions(obj, as_dict(params, "restrictions"))
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "promotion_code.updated")

    def list_promotion_codes(self, params: Params) -> Obj:
        check_known(params, PROMO_LIST)
        active = as_bool(params, "active")
        code = as_str(params, "code")
        coupon = as_str(params, "coupon")
        customer = as_str(params, "customer")
        items = [
            p
            for p in self.store.newest_first("promotion_code")
            if (active is None or p["active"] == active)
            and (code is None or p["code"].lower() == code.lower())
            and (coupon is None or p["promotion"]["coupon"] == coupon)
            and (customer is None or p["customer"] == customer)
            and in_range(p["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/promotion_codes", "promotion code")

    def usable_promotion_code(self, promo_id: str, customer: str | None, param: str) -> Obj:
        """A promotion code a purchase may apply now, or Stripe's 400 explaining why not."""
        promo = self.store.referenced("promotion_code", promo_id, param)
        coupon = self.store.tables["coupon"].get(promo["promotion"]["coupon"])
        expires_at = promo["expires_at"]
        limit = promo["max_redemptions"]
        if not promo["active"] or (expires_at is not None and expires_at <= self.store.now()):
            raise invalid(f"This promotion code is not active: {promo['code']}", param)
        if limit is not None and promo["times_redeemed"] >= limit:
            raise invalid(f"This promotion code has been fully redeemed: {promo['code']}", param)
        if coupon is None or not coupon["valid"]:
            raise invalid(f"The coupon of promotion code {promo['code']} is not valid.", param)
        if promo["customer"] is not None and promo["customer"] != customer:
            raise invalid("This promotion code cannot be redeemed by this customer.", param)
        return promo

    def usable_coupon(self, coupon_id: str, param: str) -> Obj:
        coupon = self.store.referenced("coupon", coupon_id, param)
        if not coupon["valid"]:
            raise invalid(f"Coupon {coupon_id} is no longer valid.", param)
        return coupon

    def redeem(self, coupon: Obj, promo: Obj | None) -> None:
        coupon["times_redeemed"] += 1
        limit = coupon["max_redemptions"]
        if limit is not None and coupon["times_redeemed"] >= limit:
            coupon["valid"] = False
        if promo is not None:
            promo["times_redeemed"] += 1


def _coupon_fields(params: Params) -> Params:
    percent_off = as_float(params, "percent_off")
    amount_off = as_int(params, "amount_off", minimum=1)
    currency = as_str(params, "currency")
    if percent_off is not None and amount_off is not None:
        raise only_one_of("amount_off", "percent_off")
    if percent_off is None and amount_off is None:
        raise invalid("Must provide either `amount_off` or `percent_off`.", "percent_off")
    if percent_off is not None and not 0 < percent_off <= 100:
        raise invalid("Percent off must be between 0 and 100.", "percent_off")
    if amount_off is not None and currency is None:
        raise missing_param("currency")
    duration = as_choice(params, "duration", ("forever", "once", "repeating")) or "once"
    months = as_int(params, "duration_in_months", minimum=1)
    if duration == "repeating" and months is None:
        raise missing_param("duration_in_months")
    return {
        "percent_off": percent_off,
        "amount_off": amount_off,
        "currency": currency.lower() if currency else None,
        "duration": duration,
        "duration_in_months": months if duration == "repeating" else None,
        "max_redemptions": as_int(params, "max_redemptions", minimum=1),
        "redeem_by": as_int(params, "redeem_by"),
        "name": as_str(params, "name"),
        "metadata": as_metadata(params),
    }


def _apply_restrictions(promo: Obj, restrictions: Params | None) -> None:
    if restrictions is None:
        return
    target: dict[str, Any] = promo["restrictions"]
    first_time = as_bool(restrictions, "first_time_transaction")
    if first_time is not None:
        target["first_time_transaction"] = first_time
    minimum = as_int(restrictions, "minimum_amount", minimum=0)
    if minimum is not None:
        target["minimum_amount"] = minimum
    currency = as_str(restrictions, "minimum_amount_currency")
    if currency is not None:
        target["minimum_amount_currency"] = currency.lower()
