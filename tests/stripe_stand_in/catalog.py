"""Customers, products, prices, coupons and promotion codes (those two: `catalog_discounts`)."""

from __future__ import annotations

from . import objects
from .catalog_discounts import Discounts
from .errors import StripeError, invalid, missing_param, only_one_of
from .forms import (
    Params,
    as_bool,
    as_choice,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_metadata,
    as_str,
    check_known,
    merge_metadata,
)
from .ids import invoice_prefix, new_id, random_token
from .listing import LIST_PARAMS, in_range, paginate
from .meters import price_meter
from .store import Obj, Store

# Accepted parameter names, as in the SDK's params types (API version 2026-10-28).
CUSTOMER_CREATE = {
    "address", "balance", "business_name", "cash_balance", "description", "email",
    "individual_name", "invoice_prefix", "invoice_settings", "metadata", "name",
    "next_invoice_sequence", "payment_method", "phone", "preferred_locales", "shipping",
    "source", "tax", "tax_exempt", "tax_id_data", "test_clock", "validate",
}  # fmt: skip
CUSTOMER_UPDATE = (CUSTOMER_CREATE - {"payment_method", "tax_id_data", "test_clock"}) | {
    "default_source"
}
CUSTOMER_LIST = {*LIST_PARAMS, "created", "email", "test_clock"}
PRODUCT_CREATE = {
    "active", "default_price_data", "description", "id", "images", "marketing_features",
    "metadata", "name", "package_dimensions", "shippable", "statement_descriptor", "tax_code",
    "tax_details", "type", "unit_label", "url",
}  # fmt: skip
PRODUCT_UPDATE = (PRODUCT_CREATE - {"default_price_data", "id", "type"}) | {"default_price"}
PRODUCT_LIST = {*LIST_PARAMS, "active", "created", "ids", "shippable", "type", "url"}
PRICE_CREATE = {
    "active", "billing_scheme", "currency", "currency_options", "custom_unit_amount",
    "lookup_key", "metadata", "nickname", "product", "product_data", "recurring",
    "tax_behavior", "tiers", "tiers_mode", "transfer_lookup_key", "transform_quantity",
    "unit_amount", "unit_amount_decimal",
}  # fmt: skip
PRICE_UPDATE = {
    "active", "currency_options", "lookup_key", "metadata", "nickname", "tax_behavior",
    "transfer_lookup_key",
}  # fmt: skip
PRICE_LIST = {
    *LIST_PARAMS, "active", "created", "currency", "lookup_keys", "product", "recurring", "type",
}  # fmt: skip

INTERVALS = ("day", "week", "month", "year")
_CUSTOMER_STRINGS = ("description", "email", "name", "phone")
_PRODUCT_STRINGS = ("description", "name", "statement_descriptor", "tax_code", "unit_label")


class Catalog(Discounts):
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- customers ---------------------------------------------------------------------

    def create_customer(self, params: Params) -> Obj:
        check_known(params, CUSTOMER_CREATE)
        fields: Params = {name: as_str(params, name) for name in _CUSTOMER_STRINGS}
        fields["metadata"] = as_metadata(params)
        fields["preferred_locales"] = as_list(params, "preferred_locales")
        fields["tax_exempt"] = as_choice(params, "tax_exempt", ("none", "exempt", "reverse"))
        prefix = as_str(params, "invoice_prefix") or invoice_prefix()
        obj = objects.customer(new_id("cus"), self.store.now(), fields, prefix)
        return self._created(obj, "customer.created")

    def customer_for_checkout(self, email: str | None) -> Obj:
        """The customer Checkout creates when the session named none."""
        fields = {"email": email or f"buyer-{random_token(6).lower()}@example.com"}
        obj = objects.customer(new_id("cus"), self.store.now(), fields, invoice_prefix())
        return self._created(obj, "customer.created")

    def retrieve_customer(self, params: Params, customer: str) -> Obj:
        return self.store.get("customer", customer, allow_deleted=True)

    def update_customer(self, params: Params, customer: str) -> Obj:
        check_known(params, CUSTOMER_UPDATE)
        obj = self.store.get("customer", customer)
        before = self.store.snapshot(obj)
        for name in _CUSTOMER_STRINGS:
            if name in params:
                obj[name] = as_str(params, name)
        if "preferred_locales" in params:
            obj["preferred_locales"] = as_list(params, "preferred_locales")
        if "tax_exempt" in params:
            obj["tax_exempt"] = as_choice(params, "tax_exempt", ("none", "exempt", "reverse"))
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "customer.updated")

    def delete_customer(self, params: Params, customer: str) -> Obj:
        obj = self.store.get("customer", customer)
        for subscription in self.store.newest_first("subscription"):
            if subscription["customer"] == customer and subscription["status"] != "canceled":
                self._end_subscription(subscription)
        return self._deleted(obj, "customer.deleted")

    def list_customers(self, params: Params) -> Obj:
        check_known(params, CUSTOMER_LIST)
        email = as_str(params, "email")
        items = [
            c
            for c in self.store.newest_first("customer")
            if (email is None or c["email"] == email)
            and in_range(c["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/customers", "customer")

    def _end_subscription(self, subscription: Obj) -> None:
        now = self.store.now()
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        self.store.emit("customer.subscription.deleted", subscription)

    # -- products ----------------------------------------------------------------------

    def create_product(self, params: Params) -> Obj:
        check_known(params, PRODUCT_CREATE)
        product_id = as_str(params, "id") or new_id("prod", 14)
        if product_id in self.store.table("product"):
            raise StripeError(
                400, "Product already exists.", param="id", code="resource_already_exists"
            )
        obj = objects.product(product_id, self.store.now(), self._product_fields(params))
        self._created(obj, "product.created")
        price_data = as_dict(params, "default_price_data")
        if price_data is not None:
            price = self._create_price_from(price_data, product_id, "default_price_data")
            obj["default_price"] = price["id"]
        return obj

    def _product_fields(self, params: Params) -> Params:
        fields: Params = {name: as_str(params, name) for name in _PRODUCT_STRINGS}
        if fields["name"] is None:
            raise missing_param("name")
        fields["active"] = as_bool(params, "active") is not False
        fields["metadata"] = as_metadata(params)
        fields["images"] = as_list(params, "images")
        fields["shippable"] = as_bool(params, "shippable")
        fields["url"] = as_str(params, "url")
        return fields

    def retrieve_product(self, params: Params, product: str) -> Obj:
        return self.store.get("product", product, allow_deleted=True)

    def update_product(self, params: Params, product: str) -> Obj:
        check_known(params, PRODUCT_UPDATE)
        obj = self.store.get("product", product)
        before = self.store.snapshot(obj)
        for name in (*_PRODUCT_STRINGS, "url"):
            if name in params:
                obj[name] = as_str(params, name, required=name == "name")
        for name in ("active", "shippable"):
            if name in params:
                obj[name] = as_bool(params, name)
        if "images" in params:
            obj["images"] = as_list(params, "images")
        if "default_price" in params:
            obj["default_price"] = self._default_price(params, product)
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        if obj != before:
            obj["updated"] = self.store.now()
        return self._updated(obj, before, "product.updated")

    def _default_price(self, params: Params, product: str) -> str | None:
        price_id = as_str(params, "default_price")
        if price_id is None:
            return None
        price = self.store.referenced("price", price_id, "default_price")
        if price["product"] != product:
            raise invalid("The default price must belong to this product.", "default_price")
        return price_id

    def delete_product(self, params: Params, product: str) -> Obj:
        obj = self.store.get("product", product)
        if any(p["product"] == product for p in self.store.newest_first("price")):
            raise invalid(
                "This product cannot be deleted because it has one or more user-created prices."
            )
        return self._deleted(obj, "product.deleted")

    def list_products(self, params: Params) -> Obj:
        check_known(params, PRODUCT_LIST)
        active = as_bool(params, "active")
        ids = as_list(params, "ids")
        items = [
            p
            for p in self.store.newest_first("product")
            if (active is None or p["active"] == active)
            and (not ids or p["id"] in ids)
            and in_range(p["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/products", "product")

    # -- prices ------------------------------------------------------------------------

    def create_price(self, params: Params) -> Obj:
        check_known(params, PRICE_CREATE)
        product_id = as_str(params, "product")
        product_data = as_dict(params, "product_data")
        if product_id and product_data is not None:
            raise only_one_of("product", "product_data")
        if product_data is not None:
            product_id = self.create_product(product_data)["id"]
        elif product_id is None:
            raise invalid(
                "You must specify either `product` or `product_data` when creating a price.",
                "product",
            )
        else:
            self.store.referenced("product", product_id, "product")
        return self._create_price_from(params, product_id, None)

    def _create_price_from(self, params: Params, product_id: str, prefix: str | None) -> Obj:
        fields = self._price_fields(params, prefix)
        fields["product"] = product_id
        lookup_key = fields.get("lookup_key")
        if lookup_key is not None:
            self._claim_lookup_key(lookup_key, as_bool(params, "transfer_lookup_key") or False)
        obj = objects.price(new_id("price"), self.store.now(), fields)
        return self._created(obj, "price.created")

    def _price_fields(self, params: Params, prefix: str | None) -> Params:
        def label(name: str) -> str:
            return f"{prefix}[{name}]" if prefix else name

        currency = as_str(params, "currency", required=True, param=label("currency"))
        unit_amount = as_int(params, "unit_amount", minimum=0, param=label("unit_amount"))
        decimal = as_float(params, "unit_amount_decimal", param=label("unit_amount_decimal"))
        if unit_amount is None and decimal is not None:
            unit_amount = round(decimal)
        if unit_amount is None:
            raise missing_param(label("unit_amount"))
        return {
            "currency": (currency or "").lower(),
            "unit_amount": unit_amount,
            "recurring": self._recurring(params, label("recurring")),
            "active": as_bool(params, "active") is not False,
            "lookup_key": as_str(params, "lookup_key"),
            "nickname": as_str(params, "nickname"),
            "metadata": as_metadata(params),
            "tax_behavior": as_choice(
                params, "tax_behavior", ("exclusive", "inclusive", "unspecified")
            ),
        }

    def _recurring(self, params: Params, label: str) -> Obj | None:
        spec = as_dict(params, "recurring", param=label)
        if spec is None:
            return None
        interval = as_choice(spec, "interval", INTERVALS, param=f"{label}[interval]")
        if interval is None:
            raise missing_param(f"{label}[interval]")
        count = as_int(spec, "interval_count", minimum=1, param=f"{label}[interval_count]")
        usage = as_choice(spec, "usage_type", ("licensed", "metered"), param=f"{label}[usage_type]")
        trial = as_int(spec, "trial_period_days", minimum=1)
        shown = objects.recurring(interval, count or 1, usage or "licensed", trial)
        meter = as_str(spec, "meter", param=f"{label}[meter]")
        shown["meter"] = price_meter(self.store, meter, shown["usage_type"], label)
        return shown

    def _claim_lookup_key(self, lookup_key: str, transfer: bool, owner: str | None = None) -> None:
        for price in self.store.newest_first("price"):
            if price["lookup_key"] != lookup_key or price["id"] == owner:
                continue
            if not transfer:
                raise invalid(
                    f"A price (`{price['id']}`) already uses that lookup key.", "lookup_key"
                )
            before = self.store.snapshot(price)
            price["lookup_key"] = None
            self._updated(price, before, "price.updated")

    def retrieve_price(self, params: Params, price: str) -> Obj:
        return self.store.get("price", price)

    def update_price(self, params: Params, price: str) -> Obj:
        check_known(params, PRICE_UPDATE)
        obj = self.store.get("price", price)
        before = self.store.snapshot(obj)
        if "lookup_key" in params:
            lookup_key = as_str(params, "lookup_key")
            if lookup_key is not None:
                transfer = as_bool(params, "transfer_lookup_key") or False
                self._claim_lookup_key(lookup_key, transfer, owner=price)
            obj["lookup_key"] = lookup_key
        if "active" in params:
            obj["active"] = as_bool(params, "active")
        if "nickname" in params:
            obj["nickname"] = as_str(params, "nickname")
        if "tax_behavior" in params:
            obj["tax_behavior"] = as_choice(
                params, "tax_behavior", ("exclusive", "inclusive", "unspecified")
            )
        obj["metadata"] = merge_metadata(obj["metadata"], as_metadata(params))
        return self._updated(obj, before, "price.updated")

    def list_prices(self, params: Params) -> Obj:
        check_known(params, PRICE_LIST)
        filters = _PriceFilter(params)
        items = [p for p in self.store.newest_first("price") if filters.matches(p)]
        return paginate(items, params, "/v1/prices", "price")


class _PriceFilter:
    def __init__(self, params: Params) -> None:
        self.active = as_bool(params, "active")
        self.currency = as_str(params, "currency")
        self.product = as_str(params, "product")
        self.type = as_choice(params, "type", ("one_time", "recurring"))
        self.lookup_keys = as_list(params, "lookup_keys")
        if len(self.lookup_keys) > 10:
            raise invalid("You may pass at most 10 lookup keys.", "lookup_keys")
        recurring = as_dict(params, "recurring") or {}
        self.interval = as_choice(recurring, "interval", INTERVALS, param="recurring[interval]")
        self.created = params.get("created")

    def matches(self, price: Obj) -> bool:
        recurring = price["recurring"] or {}
        return (
            (self.active is None or price["active"] == self.active)
            and (self.currency is None or price["currency"] == self.currency.lower())
            and (self.product is None or price["product"] == self.product)
            and (self.type is None or price["type"] == self.type)
            and (not self.lookup_keys or price["lookup_key"] in self.lookup_keys)
            and (self.interval is None or recurring.get("interval") == self.interval)
            and in_range(price["created"], self.created, "created")
        )
