"""URL routing: `(method, "/v1/things/{thing}")` -> handler(params, thing=...)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from .catalog import Catalog
from .checkout import Checkout
from .errors import StripeError
from .events import Events
from .forms import Params
from .subscriptions import Subscriptions

Handler = Callable[..., dict[str, Any]]
Route = tuple[str, re.Pattern[str], Handler]


def build_routes(
    catalog: Catalog, checkout: Checkout, subscriptions: Subscriptions, events: Events
) -> list[Route]:
    c, k, s, e = catalog, checkout, subscriptions, events
    table: list[tuple[str, str, Handler]] = [
        ("POST", "/v1/customers", c.create_customer),
        ("GET", "/v1/customers", c.list_customers),
        ("GET", "/v1/customers/{customer}", c.retrieve_customer),
        ("POST", "/v1/customers/{customer}", c.update_customer),
        ("DELETE", "/v1/customers/{customer}", c.delete_customer),
        ("POST", "/v1/products", c.create_product),
        ("GET", "/v1/products", c.list_products),
        ("GET", "/v1/products/{product}", c.retrieve_product),
        ("POST", "/v1/products/{product}", c.update_product),
        ("DELETE", "/v1/products/{product}", c.delete_product),
        ("POST", "/v1/prices", c.create_price),
        ("GET", "/v1/prices", c.list_prices),
        ("GET", "/v1/prices/{price}", c.retrieve_price),
        ("POST", "/v1/prices/{price}", c.update_price),
        ("POST", "/v1/coupons", c.create_coupon),
        ("GET", "/v1/coupons", c.list_coupons),
        ("GET", "/v1/coupons/{coupon}", c.retrieve_coupon),
        ("POST", "/v1/coupons/{coupon}", c.update_coupon),
        ("DELETE", "/v1/coupons/{coupon}", c.delete_coupon),
        ("POST", "/v1/promotion_codes", c.create_promotion_code),
        ("GET", "/v1/promotion_codes", c.list_promotion_codes),
        ("GET", "/v1/promotion_codes/{promotion_code}", c.retrieve_promotion_code),
        ("POST", "/v1/promotion_codes/{promotion_code}", c.update_promotion_code),
        ("POST", "/v1/checkout/sessions", k.create_session),
        ("GET", "/v1/checkout/sessions", k.list_sessions),
        ("GET", "/v1/checkout/sessions/{session}", k.retrieve_session),
        ("POST", "/v1/checkout/sessions/{session}", k.update_session),
        ("GET", "/v1/checkout/sessions/{session}/line_items", k.list_line_items),
        ("POST", "/v1/checkout/sessions/{session}/expire", k.expire_session),
        ("POST", "/v1/subscriptions", s.create_subscription),
        ("GET", "/v1/subscriptions", s.list_subscriptions),
        ("GET", "/v1/subscriptions/{subscription}", s.retrieve_subscription),
        ("POST", "/v1/subscriptions/{subscription}", s.update_subscription),
        ("DELETE", "/v1/subscriptions/{subscription}", s.cancel_subscription),
        ("GET", "/v1/subscription_items", s.list_subscription_items),
        ("GET", "/v1/subscription_items/{item}", s.retrieve_subscription_item),
        ("POST", "/v1/invoiceitems", s.invoice_items.create_invoice_item),
        ("POST", "/v1/invoices", s.invoice_items.create_invoice),
        ("GET", "/v1/invoices", s.list_invoices),
        ("GET", "/v1/invoices/{invoice}", s.retrieve_invoice),
        ("GET", "/v1/invoices/{invoice}/lines", s.list_invoice_lines),
        ("POST", "/v1/invoices/{invoice}/finalize", s.finalize_invoice),
        ("POST", "/v1/invoices/{invoice}/void", s.void_invoice),
        ("POST", "/v1/invoices/{invoice}/mark_uncollectible", s.mark_uncollectible),
        ("GET", "/v1/events", e.list_events),
        ("GET", "/v1/events/{event}", e.retrieve_event),
    ]
    return [(method, _compile(template), handler) for method, template, handler in table]


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{pattern}/?$")


def resolve(routes: list[Route], method: str, path: str) -> tuple[Handler, dict[str, str]]:
    for route_method, pattern, handler in routes:
        match = pattern.match(path)
        if match and route_method == method:
            return handler, {name: unquote(value) for name, value in match.groupdict().items()}
    raise StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
    )


def run_handler(handler: Handler, params: Params, path_ids: dict[str, str]) -> dict[str, Any]:
    return handler(params, **path_ids)
