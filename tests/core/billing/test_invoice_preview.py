"""The next invoice: Stripe's preview (the stand-in's create_preview) next to our estimate, the
disagreements named, the answer cached per customer, Stripe down never an error."""

from __future__ import annotations

import time

from core.billing import invoice_preview
from core.billing.gateway import get_gateway
from core.db import session_scope
from core.settings import get_settings
from core.usage.parsing import ReportInput
from models import utcnow
from tests.conftest import pg_scalar
from tests.helpers.reports import store_report
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import handle_inline, new_customer, start_checkout, stripe_subscription


def _preview(customer_id: str, **options: object) -> invoice_preview.NextInvoice:
    with session_scope() as session:
        return invoice_preview.next_invoice(session, customer_id, **options)  # type: ignore[arg-type]


def _previews_asked(stand_in) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in stand_in.requests if r.path == "/v1/invoices/create_preview")


def _starter_with_devices(stand_in, devices: int) -> str:  # type: ignore[no-untyped-def]
    invoice_preview.clear_cache()
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, plan="starter"))
    with session_scope() as session:
        store_report(
            session,
            ReportInput(customer_id, "edge-1", devices, devices, utcnow()),
            license_jti=None,
        )
    return customer_id


def test_an_overage_day_stripe_has_not_counted_is_flagged_then_agrees_once_sent(
    stand_in,  # type: ignore[no-untyped-def]
) -> None:
    # Starter: $29, 10 devices, 10 cents per device-day above; 13 devices today -> 3.
    customer_id = _starter_with_devices(stand_in, 13)

    preview = _preview(customer_id)
    assert preview.estimate is not None and preview.unavailable is None
    assert (preview.estimate.flat_cents, preview.estimate.device_days) == (2900, 3)
    assert preview.estimate.total_cents == 2930
    kinds = [(line.kind, line.amount_cents, line.quantity) for line in preview.lines]
    assert kinds == [("flat", 2900, 1), ("overage", 0, 0)]
    assert preview.stripe_total_cents == 2900 and preview.difference_cents == -30
    assert preview.disagrees
    assert preview.differences == [
        "overage: Stripe has 0 device-day(s), we count 3 (3 not sent to Stripe's meter yet: "
        "today so far, or days to send)"
    ]

    # Cached for the customer: a second look does not ask Stripe again.
    asked = _previews_asked(stand_in)
    assert _preview(customer_id).stripe_total_cents == 2900
    assert _previews_asked(stand_in) == asked

    stripe_customer = str(
        pg_scalar(f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'")
    )
    get_gateway().create_meter_event(
        event_name=get_settings().stripe_meter_event_name,
        identifier=f"{customer_id}-today",
        payload={"stripe_customer_id": stripe_customer, "value": "3"},
        timestamp=int(time.time()),
    )
    agreed = _preview(customer_id, refresh=True)
    assert _previews_asked(stand_in) == asked + 1
    assert agreed.stripe_total_cents == 2930 and agreed.difference_cents == 0
    assert not agreed.disagrees and agreed.differences == []


def test_a_price_changed_in_the_dashboard_is_named(stand_in) -> None:  # type: ignore[no-untyped-def]
    customer_id = _starter_with_devices(stand_in, 4)
    sub = stripe_subscription(stand_in, customer_id)
    flat = next(i for i in sub["items"]["data"] if i["price"]["unit_amount"] == 2900)
    client = stand_in.client()
    dearer = client.v1.prices.create(
        params={
            "product": flat["price"]["product"],
            "currency": "usd",
            "unit_amount": 3500,
            "recurring": {"interval": "month"},
        }
    )
    client.v1.subscriptions.update(
        sub["id"],
        params={"items": [{"id": flat["id"], "price": dearer.id}], "proration_behavior": "none"},
    )

    preview = _preview(customer_id)
    assert preview.stripe_total_cents == 3500 and preview.difference_cents == 600
    assert preview.differences == [
        "flat price: Stripe $35.00, our catalogue $29.00 (a price changed in the Dashboard?)"
    ]


def test_stripe_unreachable_gives_our_estimate_and_says_the_preview_is_unavailable(
    stand_in,  # type: ignore[no-untyped-def]
) -> None:
    customer_id = _starter_with_devices(stand_in, 12)
    stand_in.set_down(True)
    preview = _preview(customer_id)
    assert preview.estimate is not None and preview.estimate.total_cents == 2900 + 20
    assert preview.lines == [] and preview.stripe_total_cents is None
    assert preview.unavailable is not None
    assert preview.unavailable.startswith("Stripe's preview is unavailable")
    assert not preview.disagrees

    stand_in.set_down(False)
    # Asked again once Stripe is back (refresh), not on every page view in between.
    assert _preview(customer_id).unavailable is not None
    assert _preview(customer_id, refresh=True).stripe_total_cents == 2900


def test_no_next_invoice_without_a_stripe_subscription() -> None:
    customer_id = new_customer()
    preview = _preview(customer_id)
    assert preview.estimate is None and preview.lines == [] and not preview.disagrees
