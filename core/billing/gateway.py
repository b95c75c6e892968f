"""The Stripe gateway: every call this service makes to Stripe, over the official SDK.

Answers are plain dicts in Stripe's object shapes (`StripeObject.to_dict()`), so the rest of the
code never depends on the SDK's classes. Errors become the domain errors of
`core.billing.stripe_errors` (503 with Retry-After, 502, or the caller's 422 via `refused_as`).
Every call is made with the pinned STRIPE_API_VERSION, so the shapes this code reads are the ones
Stripe sends whatever SDK is installed.

Every create call carries an idempotency key, so a retried call (by the SDK, a task or a person)
never makes a second customer, session or price.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import stripe

from core.billing import stripe_errors
from core.billing.gateway_events import EventCalls
from core.billing.gateway_invoices import InvoiceCalls

# The keys live in idempotency; re-exported, as callers know them from the gateway.
from core.billing.idempotency import idempotency_key as idempotency_key
from core.billing.idempotency import unique_idempotency_key as unique_idempotency_key

# The errors live in stripe_errors; re-exported, as callers know them from the gateway.
from core.billing.stripe_errors import StripeNotConfiguredError as StripeNotConfiguredError
from core.billing.stripe_errors import StripeRequestError as StripeRequestError
from core.billing.stripe_errors import StripeUnavailableError as StripeUnavailableError
from core.settings import Settings, get_settings

Obj = dict[str, Any]

# What a subscription is read with: whether its period is paid, which promotion codes it holds.
SUBSCRIPTION_EXPAND = ["latest_invoice", "discounts"]


class DuplicateMeterEventError(StripeRequestError):
    """Stripe already holds a meter event with this identifier: it was delivered before."""


def _json_safe(value: Any) -> Any:
    # The SDK turns Stripe's decimal strings ("unit_amount_decimal": "2900") into Decimal;
    # back to the string Stripe sent, so payloads can be stored as JSON.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _plain(obj: Any) -> Any:
    if isinstance(obj, stripe.StripeObject):
        return _json_safe(obj.to_dict())
    return obj


class StripeGateway(EventCalls, InvoiceCalls):
    """The calls the billing service makes to Stripe (see module doc for errors)."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return _plain(fn(*args, **kwargs))
        except stripe.StripeError as exc:
            raise stripe_errors.translate(exc) from exc

    def _create(self, create: Any, params: Obj, operation: str, *key_parts: object) -> Obj:
        """`create(params)` keyed on what it creates: made again (after a timeout, say), the
        same request returns what the first one created."""
        key = idempotency_key(operation, *key_parts)
        return self._call(create, params=params, options={"idempotency_key": key})

    # -- customers ----------------------------------------------------------------------

    def create_customer(
        self, *, customer_id: str, email: str, name: str | None, replacing: str | None = None
    ) -> Obj:
        """`replacing`: the Stripe customer this one replaces (deleted in Stripe); part of the
        idempotency key, or Stripe would answer with the deleted customer again."""
        params: dict[str, Any] = {"email": email, "metadata": {"customerId": customer_id}}
        if name:
            params["name"] = name
        replaces = [replacing] if replacing else []
        return self._create(
            self.client.v1.customers.create, params, "customer", customer_id, params, *replaces
        )

    # -- catalogue ----------------------------------------------------------------------

    def find_price_by_lookup_key(self, lookup_key: str) -> Obj | None:
        found = self._call(
            self.client.v1.prices.list,
            params={"lookup_keys": [lookup_key], "active": True, "limit": 1},
        )
        data = found.get("data") or []
        return data[0] if data else None

    def retrieve_price(self, price_id: str) -> Obj:
        return self._call(self.client.v1.prices.retrieve, price_id)

    def find_product(self, zemfyre_plan: str) -> Obj | None:
        """The active product made for a plan (tagged `metadata[zemfyre_plan]`)."""
        for product in self._iterate(self.client.v1.products.list, {"active": True}):
            if (product.get("metadata") or {}).get("zemfyre_plan") == zemfyre_plan:
                return product
        return None

    def create_product(self, *, name: str, description: str, zemfyre_plan: str) -> Obj:
        params = {
            "name": name,
            "description": description,
            "metadata": {"zemfyre_plan": zemfyre_plan},
        }
        return self._create(self.client.v1.products.create, params, "product", params)

    def create_monthly_price(
        self, *, product_id: str, unit_amount: int, lookup_key: str, zemfyre_plan: str
    ) -> Obj:
        params = {
            "product": product_id,
            "currency": "usd",
            "unit_amount": unit_amount,
            "recurring": {"interval": "month"},
            "lookup_key": lookup_key,
            "metadata": {"zemfyre_plan": zemfyre_plan},
        }
        return self._create(self.client.v1.prices.create, params, "price", params)

    def find_promotion_code(self, code: str) -> Obj | None:
        """The active promotion code customers type as `code` (letter case ignored)."""
        found = self._call(
            self.client.v1.promotion_codes.list,
            params={"code": code, "active": True, "limit": 1},
        )
        data = found.get("data") or []
        return data[0] if data else None

    # -- billing meters (device overage) -------------------------------------------------

    def find_meter(self, event_name: str) -> Obj | None:
        """The active meter of `event_name` (Stripe keeps one active meter per event name)."""
        for meter in self._iterate(self.client.v1.billing.meters.list, {"status": "active"}):
            if meter.get("event_name") == event_name:
                return meter
        return None

    def create_sum_meter(
        self, *, event_name: str, display_name: str, customer_key: str, value_key: str
    ) -> Obj:
        """A meter adding up the `value_key` of its events per customer (by Stripe customer id)."""
        params = {
            "display_name": display_name,
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": customer_key},
            "value_settings": {"event_payload_key": value_key},
        }
        return self._create(self.client.v1.billing.meters.create, params, "meter", params)

    def create_metered_price(
        self, *, flat: Obj, meter_id: str, unit_amount: int, lookup_key: str, plan: str
    ) -> Obj:
        """A monthly price billing what `meter_id` summed over the period, per unit, beside the
        plan's flat price `flat`: its product, currency and tax behaviour (Stripe refuses a
        subscription whose items differ in currency)."""
        product = flat["product"]
        params = {
            "product": str(product["id"] if isinstance(product, dict) else product),
            "currency": flat["currency"],
            "tax_behavior": flat.get("tax_behavior") or "unspecified",
            "unit_amount": unit_amount,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
            "lookup_key": lookup_key,
            # Not `zemfyre_plan`: that tag names a plan's flat price (see sync.plan_for_price).
            "metadata": {"zemfyre_overage_plan": plan},
        }
        return self._create(self.client.v1.prices.create, params, "metered-price", params)

    def create_meter_event(
        self, *, event_name: str, identifier: str, payload: dict[str, str], timestamp: int
    ) -> Obj:
        """Record usage on a meter. Stripe refuses a second event with an identifier it holds
        (400 "An event already exists with identifier …"): that is `DuplicateMeterEventError`,
        proof that the event was delivered before."""
        params = {
            "event_name": event_name,
            "identifier": identifier,
            "payload": payload,
            "timestamp": timestamp,
        }
        try:
            return _plain(
                self.client.v1.billing.meter_events.create(
                    params=params,
                    options={"idempotency_key": idempotency_key("meter-event", params)},
                )
            )
        except stripe.InvalidRequestError as exc:
            if "already exists with identifier" in str(exc.user_message or exc):
                raise DuplicateMeterEventError(
                    f"Stripe already holds meter event {identifier}", stripe_code=exc.code
                ) from exc
            raise stripe_errors.translate(exc) from exc
        except stripe.StripeError as exc:
            raise stripe_errors.translate(exc) from exc

    def meter_usage(self, meter_id: str, stripe_customer_id: str, start: int, end: int) -> float:
        """What Stripe has aggregated of a customer's events stamped in [start, end) (minute
        boundaries): one meter event summary (docs.stripe.com/api/billing/meter-event-summary/
        list); eventually consistent, as Stripe aggregates meter events asynchronously."""
        found = self._call(
            self.client.v1.billing.meters.event_summaries.list,
            meter_id,
            params={"customer": stripe_customer_id, "start_time": start, "end_time": end},
        )
        return sum(float(summary["aggregated_value"]) for summary in found["data"])

    # -- checkout and subscriptions -----------------------------------------------------

    def create_checkout_session(self, params: Obj) -> Obj:
        return self._call(
            self.client.v1.checkout.sessions.create,
            params=params,
            options={"idempotency_key": unique_idempotency_key("checkout")},
        )

    def expire_open_checkout_sessions(self, stripe_customer_id: str) -> list[str]:
        """Expire the customer's open Checkout Sessions (a session stays payable for 24 h), so
        only the newest one can start a subscription; the ids expired."""
        expired = []
        for found in self._iterate(
            self.client.v1.checkout.sessions.list,
            {"customer": stripe_customer_id, "status": "open"},
        ):
            self._call(self.client.v1.checkout.sessions.expire, str(found["id"]))
            expired.append(str(found["id"]))
        return expired

    def retrieve_subscription(self, subscription_id: str) -> Obj:
        """The subscription with its latest invoice (whether its period is paid) and its
        discounts (which promotion codes it holds) expanded."""
        return self._with_period_invoice(
            self._call(
                self.client.v1.subscriptions.retrieve,
                subscription_id,
                params={"expand": SUBSCRIPTION_EXPAND},
            )
        )

    def list_subscriptions(self, stripe_customer_id: str) -> list[Obj]:
        """Every subscription of a Stripe customer that has not ended, latest invoice expanded."""
        return [
            self._with_period_invoice(sub)
            for sub in self._iterate(
                self.client.v1.subscriptions.list,
                {
                    "customer": stripe_customer_id,
                    "expand": [f"data.{field}" for field in SUBSCRIPTION_EXPAND],
                },
            )
        ]

    def update_subscription(
        self, subscription_id: str, params: Obj, *, once_key: str | None = None
    ) -> Obj:
        """Change a subscription; the answer expanded as on retrieve.
        `once_key`: the change is made once whoever asks for it (Stripe answers a second
        request with the same key with the first one's answer, for 24 hours)."""
        key = once_key or unique_idempotency_key("subscription-update")
        return self._after_write(
            self._call(
                self.client.v1.subscriptions.update,
                subscription_id,
                params={**params, "expand": SUBSCRIPTION_EXPAND},
                options={"idempotency_key": key},
            )
        )

    def migrate_to_flexible(self, subscription_id: str) -> Obj:
        """Classic -> flexible billing mode, one way (docs.stripe.com/api/subscriptions/migrate)."""
        return self._call(
            self.client.v1.subscriptions.migrate,
            subscription_id,
            params={"billing_mode": {"type": "flexible"}},
        )

    def cancel_subscription(self, subscription_id: str, *, credit_unused: bool) -> Obj:
        """Cancel now with a final invoice of the metered usage not yet invoiced and the pending
        prorations (`invoice_now`: docs.stripe.com/api/subscriptions/cancel); `credit_unused`
        also credits the unused time (`prorate`; only for a paid period: `core.billing.changes`).
        """
        params: Obj = {"invoice_now": True, "expand": ["latest_invoice"]}
        if credit_unused:
            params["prorate"] = True
        return self._after_write(
            self._call(self.client.v1.subscriptions.cancel, subscription_id, params=params)
        )

    def preview_next_invoice(self, *, stripe_customer_id: str, subscription_id: str) -> Obj:
        """The subscription's next invoice as Stripe previews it (create_preview), with the
        subscription expanded: a line names its price by id only, the items say which is which."""
        expand = ["parent.subscription_details.subscription"]
        params = {"customer": stripe_customer_id, "subscription": subscription_id, "expand": expand}
        return self._call(self.client.v1.invoices.create_preview, params=params)

    def retrieve_charge(self, charge_id: str) -> Obj:
        """A charge (a dispute names only its charge; the charge names the customer)."""
        return self._call(self.client.v1.charges.retrieve, charge_id)

    def create_portal_session(
        self, stripe_customer_id: str, return_url: str, *, configuration: str
    ) -> Obj:
        """A Stripe customer portal session for the customer, showing what `configuration`
        allows (`core.billing.portal`)."""
        params = {
            "customer": stripe_customer_id,
            "return_url": return_url,
            "configuration": configuration,
        }
        return self._call(self.client.v1.billing_portal.sessions.create, params=params)

    def find_portal_configuration(self, metadata: dict[str, str]) -> Obj | None:
        """The portal configuration whose metadata includes `metadata`, active or deactivated
        (in the Dashboard): the active one first."""
        listing = self.client.v1.billing_portal.configurations.list
        found = [
            each
            for each in self._iterate(listing, {})
            if all((each.get("metadata") or {}).get(k) == v for k, v in metadata.items())
        ]
        return max(found, key=lambda each: bool(each.get("active")), default=None)

    def create_portal_configuration(self, *, features: Obj, metadata: dict[str, str]) -> Obj:
        params = {"features": features, "metadata": metadata}
        create = self.client.v1.billing_portal.configurations.create
        return self._create(create, params, "portal-configuration", params)

    def update_portal_configuration(self, configuration_id: str, *, features: Obj) -> Obj:
        update = self.client.v1.billing_portal.configurations.update
        params = {"features": features, "active": True}  # deactivated in the Dashboard: back
        return self._call(update, configuration_id, params=params)

    def _iterate(self, list_fn: Any, params: Obj, *args: Any) -> Iterator[Obj]:
        params = {**params, "limit": params.get("limit", 100)}
        while True:
            page = self._call(list_fn, *args, params=params)
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            params = {**params, "starting_after": data[-1]["id"]}


def stripe_client(settings: Settings) -> stripe.StripeClient:
    if not settings.stripe_secret_key:
        raise StripeNotConfiguredError(
            "Stripe is not configured: set STRIPE_SECRET_KEY (sk_live_… or sk_test_…)",
            field="STRIPE_SECRET_KEY",
        )
    options: dict[str, Any] = {
        "max_network_retries": settings.stripe_max_network_retries,
        "http_client": stripe.new_default_http_client(timeout=settings.stripe_timeout_seconds),
    }
    if settings.stripe_api_base:
        options["base_addresses"] = {"api": settings.stripe_api_base.rstrip("/")}
    return stripe.StripeClient(
        settings.stripe_secret_key, stripe_version=settings.stripe_api_version, **options
    )


def get_gateway(settings: Settings | None = None) -> StripeGateway:
    """The gateway for the current settings; raises StripeNotConfiguredError without a key."""
    return StripeGateway(stripe_client(settings or get_settings()))


def stripe_configured(settings: Settings | None = None) -> bool:
    return bool((settings or get_settings()).stripe_secret_key)
