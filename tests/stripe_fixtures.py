"""Stripe test fixtures: the stand-in server, settings pointing at it, and small helpers.

Import the fixtures into a test module with `from tests.stripe_fixtures import *  # noqa`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from core.settings import get_settings
from tests.conftest import pg_scalar
from tests.helpers.waiting import wait_until
from tests.stripe_stand_in import StripeStandIn, signed_webhook, start_stand_in

__all__ = [
    "deliver",
    "thin_webhook_secret",
    "deliver_all",
    "handle_inline",
    "license_claims",
    "license_count",
    "local_subscription_state",
    "cancel_at_period_end_in_stripe",
    "change_plan_in_stripe",
    "start_checkout",
    "stripe_subscription",
    "new_customer",
    "stand_in",
    "stripe_server",
    "subscription_row",
    "wait_for_events",
    "webhook_secret",
]

# Fast retries so a test sees a failed event retried within seconds.
STRIPE_TEST_ENV = {
    "STRIPE_SECRET_KEY": "sk_test_zemfyre",
    "STRIPE_MAX_NETWORK_RETRIES": "0",
    "STRIPE_TIMEOUT_SECONDS": "5",
    "STRIPE_EVENT_RETRY_BASE_SECONDS": "0.2",
    "STRIPE_EVENT_RETRY_MAX_SECONDS": "1",
}


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeStandIn]:
    server = start_stand_in()
    yield server
    server.stop()


@pytest.fixture
def stand_in(stripe_server: StripeStandIn) -> Iterator[StripeStandIn]:
    """A fresh stand-in with the Zemfyre catalogue, and the settings (also the worker's) on it."""
    stripe_server.reset()
    with configured_for(stripe_server):
        yield stripe_server


@contextmanager
def configured_for(server: StripeStandIn) -> Iterator[StripeStandIn]:
    """The settings (also the worker's) on `server`, with the Zemfyre catalogue set up in it."""
    from core.billing.catalogue import setup_catalogue
    from core.billing.gateway import get_gateway
    from core.billing.metering.meters import setup_metering
    from core.billing.portal import setup_portal

    patch = pytest.MonkeyPatch()
    try:
        for name, value in {**STRIPE_TEST_ENV, "STRIPE_API_BASE": server.url}.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        for line in setup_catalogue(get_gateway()):
            patch.setenv(f"STRIPE_PRICE_{line.plan.upper()}", line.price_id)
        # The overage meter and prices, found by checkout and plan changes by their lookup keys.
        setup_metering(get_gateway())
        # Our customer portal configuration, found by portal sessions by its metadata.
        setup_portal(get_gateway())
        get_settings.cache_clear()
        yield server
    finally:
        patch.undo()
        get_settings.cache_clear()


def webhook_secret() -> str:
    secret = get_settings().stripe_webhook_secret
    assert secret
    return secret


def new_customer(email: str = "buyer@example.com", company: str | None = "Acme Corp") -> str:
    from core.customers.service import create_customer
    from core.db import session_scope

    with session_scope() as session:
        return create_customer(session, email=email, name="Buyer", company_name=company).customer_id


def thin_webhook_secret() -> str:
    secret = get_settings().stripe_thin_webhook_secret
    assert secret
    return secret


def deliver(client: Any, event: dict[str, Any], *, timestamp: int | None = None) -> Any:
    """POST `event` signed as its destination would: a thin event by the thin destination."""
    thin = event.get("object") == "v2.core.event"
    secret = thin_webhook_secret() if thin else webhook_secret()
    payload, headers = signed_webhook(event, secret, timestamp)
    return client.post("/webhooks/stripe", content=payload, headers=headers)


def deliver_all(
    client: Any, events: list[dict[str, Any]], *, seed: int, times: int = 2
) -> list[dict[str, Any]]:
    """Every event `times` times, in an order shuffled by `seed`; each must be accepted."""
    deliveries = [event for event in events for _ in range(times)]
    random.Random(seed).shuffle(deliveries)
    for event in deliveries:
        response = deliver(client, event)
        assert response.status_code == 200, response.text
    return deliveries


def wait_for_events(event_ids: list[str], timeout: float = 30.0) -> None:
    """Until every event is handled (processed or ignored) by the worker."""
    quoted = ", ".join(f"'{event_id}'" for event_id in set(event_ids))
    wait_until(
        lambda: (
            pg_scalar(
                f"SELECT count(*) FROM stripe_events WHERE event_id IN ({quoted}) "
                "AND status IN ('processed', 'ignored')"
            )
            == len(set(event_ids))
        ),
        timeout=timeout,
    )


def subscription_row(customer_id: str) -> dict[str, Any]:
    row = pg_scalar(
        "SELECT row_to_json(s) FROM (SELECT plan, status, stripe_subscription_id, "
        "stripe_price_id, cancel_at_period_end, current_period_ends_at, canceled_at, "
        "trial_ends_at FROM subscriptions "
        f"WHERE customer_id = '{customer_id}') s"
    )
    assert row is not None
    return row if isinstance(row, dict) else json.loads(str(row))


def local_subscription_state(customer_id: str) -> dict[str, Any]:
    """What the service says of a customer's subscription: its row and its current license."""
    row = subscription_row(customer_id)
    claims = license_claims(customer_id)
    return {
        "plan": row["plan"],
        "status": row["status"],
        "cancel_at_period_end": row["cancel_at_period_end"],
        "period_end": row["current_period_ends_at"],
        "license_plan": claims["plan"],
        "license_status": claims["subscription"]["status"],
        "license_period_end": claims["subscription"]["currentPeriodEndsAt"],
    }


def handle_inline(events: list[dict[str, Any]], *, only: tuple[str, ...] = ()) -> list[Any]:
    """Store and handle events in this process, as `billing stripe replay` does (no worker):
    a promotion code the handling found waiting is applied after it committed."""
    from core.billing import handlers, inbox, promotions
    from core.billing.gateway import get_gateway
    from core.db import session_scope

    outcomes = []
    for event in events:
        if only and event["type"] not in only:
            continue
        with session_scope() as session:
            inbox.store_event(session, event)
        with session_scope() as session:
            outcome = handlers.process_event(session, event["id"])
        outcomes.append(outcome)
        if outcome.promotion_waiting and outcome.customer_id:
            promotions.apply_waiting_to(
                session_scope, get_gateway(), outcome.promotion_waiting, outcome.customer_id
            )
    return outcomes


def license_count(customer_id: str) -> int:
    return int(pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{customer_id}'"))  # type: ignore[arg-type]


def license_claims(customer_id: str) -> dict[str, Any]:
    """The claims of the current license, decoded from its token with the public key."""
    from core.licensing.keys import public_keys
    from core.licensing.tokens import verify_license

    token = pg_scalar(
        f"SELECT token FROM licenses WHERE customer_id = '{customer_id}' "
        "AND superseded_at IS NULL ORDER BY id DESC LIMIT 1"
    )
    assert isinstance(token, str)
    # An ended subscription's license expires as it is issued: read it without the exp check.
    return verify_license(
        token, public_keys(), issuer=get_settings().license_issuer, verify_exp=False
    )


def start_checkout(stand_in: StripeStandIn, customer_id: str, plan: str = "starter") -> list[dict]:
    """A checkout created by the service and paid in Stripe; its events, not yet delivered."""
    from core.billing.checkout import create_checkout
    from core.billing.gateway import get_gateway
    from core.db import session_scope

    with session_scope() as session:
        result = create_checkout(
            session,
            get_gateway(),
            customer_id=customer_id,
            plan=plan,
            success_url="https://example.com/ok",
            cancel_url="https://example.com/no",
        )
    return stand_in.complete_checkout(result.session_id)


def stripe_subscription(stand_in: StripeStandIn, customer_id: str) -> dict[str, Any]:
    """The customer's newest subscription as Stripe holds it (canceled ones included)."""
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    subs = stand_in.client().v1.subscriptions.list(
        params={"customer": stripe_customer, "status": "all"}
    )
    return subs["data"][0].to_dict()


def change_plan_in_stripe(stand_in: StripeStandIn, customer_id: str, plan: str) -> list[dict]:
    """A plan change made in Stripe itself (the dashboard): we only learn of it by its events."""
    sub = stripe_subscription(stand_in, customer_id)
    mark = len(stand_in.events)
    price = getattr(get_settings(), f"stripe_price_{plan}")
    item = sub["items"]["data"][0]["id"]
    stand_in.client().v1.subscriptions.update(
        sub["id"], params={"items": [{"id": item, "price": price}]}
    )
    return stand_in.events[mark:]


def cancel_at_period_end_in_stripe(stand_in: StripeStandIn, customer_id: str) -> list[dict]:
    sub = stripe_subscription(stand_in, customer_id)
    mark = len(stand_in.events)
    stand_in.client().v1.subscriptions.update(sub["id"], params={"cancel_at_period_end": True})
    return stand_in.events[mark:]


def paying_customer(stand_in: StripeStandIn, plan: str = "starter") -> tuple[str, str]:
    """A customer who paid a checkout for `plan`, its events handled: (customer id, Stripe
    subscription id)."""
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, plan))
    return customer_id, subscription_row(customer_id)["stripe_subscription_id"]


def subscription_invoices(stand_in: StripeStandIn, sub_id: str) -> list[dict[str, Any]]:
    """Every invoice of a Stripe subscription, newest first."""
    found = stand_in.client().v1.invoices.list(params={"subscription": sub_id, "limit": 100})
    return [invoice.to_dict() for invoice in found.data]


def meter_usage(stand_in: StripeStandIn, customer_id: str, value: int) -> str:
    """Device-days reaching Stripe's meter for the customer now (as the nightly run sends);
    the Stripe customer id."""
    import time

    from core.billing.gateway import get_gateway

    stripe_customer = str(
        pg_scalar(f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'")
    )
    get_gateway().create_meter_event(
        event_name=get_settings().stripe_meter_event_name,
        identifier=f"usage-{customer_id}-{value}",
        payload={"stripe_customer_id": stripe_customer, "value": str(value)},
        timestamp=int(time.time()),
    )
    return stripe_customer
