"""What the stand-in bills of a meter: per the subscription's metered items and billing mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from tests.stripe_stand_in import StripeStandIn, start_stand_in

HOUR = 3600


@pytest.fixture
def clock() -> list[float]:
    return [time.time()]


@pytest.fixture
def stand_in(clock: list[float]) -> Iterator[StripeStandIn]:
    server = start_stand_in(clock=lambda: clock[0])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def catalog(stand_in: StripeStandIn) -> dict[str, Any]:
    client = stand_in.client()
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "Overage",
            "event_name": "overage",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = client.v1.products.create(params={"name": "Devices"})
    base = {"product": product.id, "currency": "usd"}
    metered = {"interval": "month", "usage_type": "metered", "meter": meter.id}
    return {
        "flat": client.v1.prices.create(
            params={**base, "unit_amount": 2900, "recurring": {"interval": "month"}}
        ),
        "a": client.v1.prices.create(params={**base, "unit_amount": 10, "recurring": metered}),
        "b": client.v1.prices.create(params={**base, "unit_amount": 7, "recurring": metered}),
        "customer": client.v1.customers.create(params={"email": "u@example.com"}),
    }


def _subscribe(client: stripe.StripeClient, catalog: dict[str, Any], mode: str | None = None):
    params: dict[str, Any] = {
        "customer": catalog["customer"].id,
        "items": [{"price": catalog["flat"].id, "quantity": 1}, {"price": catalog["a"].id}],
    }
    if mode:
        params["billing_mode"] = {"type": mode}
    return client.v1.subscriptions.create(params=params)


def _use(client: stripe.StripeClient, catalog: dict[str, Any], value: int, at: float) -> None:
    client.v1.billing.meter_events.create(
        params={
            "event_name": "overage",
            "payload": {"stripe_customer_id": catalog["customer"].id, "value": str(value)},
            "timestamp": int(at),
        }
    )


def _metered_item(sub: Any) -> str:
    return next(i.id for i in sub["items"].data if i.price.recurring.usage_type == "metered")


def test_a_renewal_bills_the_period_and_never_what_arrives_for_it_afterwards(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float]
) -> None:
    client = stand_in.client()
    sub = _subscribe(client, catalog)
    assert sub.billing_mode.type == "flexible"  # the pinned version's default
    clock[0] += HOUR
    _use(client, catalog, 5, clock[0] - 60)
    period_end = sub["items"].data[0].current_period_end
    clock[0] = period_end + 60

    (renewal,) = [e for e in stand_in.advance_period(sub.id) if e["type"] == "invoice.paid"]

    assert renewal["data"]["object"]["total"] == 2900 + 5 * 10
    _use(client, catalog, 4, period_end - 60)  # accepted, stamped into the invoiced period
    assert stand_in.meters.summed("overage", catalog["customer"].id) == 9
    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == 5


@pytest.mark.parametrize(
    ("mode", "proration", "billed"),
    [
        ("flexible", "create_prorations", 5),
        ("flexible", "none", 0),
        ("classic", "create_prorations", 0),
    ],
)
def test_a_swapped_metered_price_bills_its_usage_only_in_flexible_mode_and_with_prorations(
    stand_in: StripeStandIn,
    catalog: dict[str, Any],
    clock: list[float],
    mode: str,
    proration: str,
    billed: int,
) -> None:
    client = stand_in.client()
    sub = _subscribe(client, catalog, mode)
    clock[0] += HOUR
    _use(client, catalog, 5, clock[0] - 60)
    clock[0] += HOUR
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub), "price": catalog["b"].id}],
            "proration_behavior": proration,
        },
    )
    clock[0] += HOUR
    _use(client, catalog, 2, clock[0] - 60)  # at the new price
    clock[0] = sub["items"].data[0].current_period_end + 60

    stand_in.advance_period(sub.id)

    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == billed + 2


def test_a_classic_subscription_migrated_to_flexible_bills_a_swapped_items_usage(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float]
) -> None:
    """POST /v1/subscriptions/{id}/migrate (docs.stripe.com/api/subscriptions/migrate): one way,
    classic -> flexible; from then on a swap with prorations bills the old item's usage."""
    client = stand_in.client()
    sub = _subscribe(client, catalog, "classic")
    clock[0] += HOUR
    _use(client, catalog, 5, clock[0] - 60)
    migrated = client.v1.subscriptions.migrate(
        sub.id, params={"billing_mode": {"type": "flexible"}}
    )
    assert migrated.billing_mode.type == "flexible"
    with pytest.raises(stripe.InvalidRequestError):  # one way, once
        client.v1.subscriptions.migrate(sub.id, params={"billing_mode": {"type": "flexible"}})
    clock[0] += HOUR
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub), "price": catalog["b"].id}],
            "proration_behavior": "create_prorations",
        },
    )
    clock[0] = sub["items"].data[0].current_period_end + 60

    stand_in.advance_period(sub.id)

    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == 5


def test_a_deleted_metered_item_bills_its_usage_at_once_with_always_invoice(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float]
) -> None:
    client = stand_in.client()
    sub = _subscribe(client, catalog)
    clock[0] += HOUR
    _use(client, catalog, 6, clock[0] - 60)
    clock[0] += HOUR
    mark = len(stand_in.events)

    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub), "deleted": True}],
            "proration_behavior": "always_invoice",
        },
    )

    paid = [e["data"]["object"] for e in stand_in.events[mark:] if e["type"] == "invoice.paid"]
    assert [invoice["total"] for invoice in paid] == [60]
    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == 6


@pytest.mark.parametrize("declines", [False, True], ids=["card pays", "card declines"])
def test_cancelling_now_with_invoice_now_bills_the_usage_to_date_and_may_be_declined(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float], declines: bool
) -> None:
    # invoice_now "will generate a final invoice that invoices for any un-invoiced metered
    # usage and new/pending proration invoice items" (docs.stripe.com/api/subscriptions/cancel);
    # it is charged like any invoice, so a declined card leaves it open.
    client = stand_in.client()
    sub = _subscribe(client, catalog)
    clock[0] += HOUR
    _use(client, catalog, 3, clock[0] - 60)
    stand_in.decline_charges(catalog["customer"].id, declines)
    mark = len(stand_in.events)

    canceled = client.v1.subscriptions.cancel(sub.id, params={"invoice_now": True})

    final = client.v1.invoices.retrieve(canceled.latest_invoice)
    assert final.total == 3 * 10
    assert final.status == ("open" if declines else "paid")
    assert final.amount_paid == (0 if declines else 30)
    wanted = "invoice.payment_failed" if declines else "invoice.paid"
    assert wanted in [e["type"] for e in stand_in.events[mark:]]
    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == 3


# -- a renewal is a draft for an hour and reads the meter when finalized -------------------------
# "All invoices have a default finalization grace period of 1 hour. [...] During finalization,
# Stripe updates the invoice to reflect the latest quantity for its billing period"
# (docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period).


def test_usage_reported_in_the_drafts_hour_is_billed_on_it_and_later_usage_never(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float]
) -> None:
    client = stand_in.client()
    sub = _subscribe(client, catalog)
    period_end = sub["items"].data[0].current_period_end
    clock[0] = period_end - HOUR
    _use(client, catalog, 5, clock[0])
    clock[0] = period_end

    renewed = stand_in.renew_awaiting_payment(sub.id)

    (created,) = [e["data"]["object"] for e in renewed if e["type"] == "invoice.created"]
    assert created["status"] == "draft"
    assert created["automatically_finalizes_at"] == period_end + HOUR
    assert created["status_transitions"]["finalized_at"] is None
    assert created["total"] == 2900 + 5 * 10  # the usage reported so far shows on the draft
    clock[0] = period_end + 30 * 60
    _use(client, catalog, 3, period_end - 1)  # late, inside the draft's hour: counted
    clock[0] = period_end + HOUR - 1
    assert stand_in.run_due() == []
    assert client.v1.invoices.retrieve(created["id"]).status == "draft"

    clock[0] = period_end + HOUR
    events = stand_in.run_due()

    assert [e["type"] for e in events] == [
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    invoice = client.v1.invoices.retrieve(created["id"])
    assert invoice.status == "paid"
    assert invoice.automatically_finalizes_at is None
    assert invoice.total == invoice.amount_paid == 2900 + 8 * 10
    usage = [line for line in invoice.lines.data if line.quantity == 8]
    assert len(usage) == 1 and usage[0].period.end == period_end
    clock[0] += 60
    _use(client, catalog, 4, period_end - 1)  # after finalization: accepted, never billed
    assert stand_in.meters.summed("overage", catalog["customer"].id) == 12
    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == 8
    assert stand_in.run_due() == []


def test_a_draft_is_finalized_before_a_request_made_after_its_hour_is_answered(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float]
) -> None:
    client = stand_in.client()
    stand_in.decline_charges(catalog["customer"].id)
    sub = _subscribe(client, catalog)
    period_end = sub["items"].data[0].current_period_end
    clock[0] = period_end
    stand_in.renew_awaiting_payment(sub.id)
    clock[0] = period_end + HOUR + 5
    # Stripe finalized it an hour after it was made: an event for the ended period sent now
    # is too late, whoever asks first.
    _use(client, catalog, 6, period_end - 1)

    after = client.v1.subscriptions.retrieve(sub.id)

    assert after.status == "past_due"
    invoice = client.v1.invoices.retrieve(after.latest_invoice)
    assert (invoice.status, invoice.attempt_count, invoice.total) == ("open", 1, 2900)
    assert [e["type"] for e in stand_in.run_due()] == [
        "invoice.finalized",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == 0


def test_finalizing_a_draft_by_hand_reads_the_meter_again(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float]
) -> None:
    client = stand_in.client()
    sub = _subscribe(client, catalog)
    period_end = sub["items"].data[0].current_period_end
    clock[0] = period_end
    stand_in.renew_awaiting_payment(sub.id)
    draft_id = client.v1.subscriptions.retrieve(sub.id).latest_invoice
    clock[0] += 60
    _use(client, catalog, 2, period_end - 1)

    invoice = client.v1.invoices.finalize_invoice(draft_id, params={"auto_advance": False})

    assert (invoice.status, invoice.total) == ("open", 2900 + 2 * 10)
    clock[0] = period_end + 2 * HOUR
    assert stand_in.run_due() == []  # finalized already: not finalized or charged again
    assert client.v1.invoices.retrieve(draft_id).status == "open"


def test_an_update_bills_only_the_usage_aggregated_by_then(
    stand_in: StripeStandIn, catalog: dict[str, Any], clock: list[float]
) -> None:
    client = stand_in.client()
    sub = _subscribe(client, catalog)
    clock[0] += HOUR
    _use(client, catalog, 2, clock[0] - 60)
    clock[0] += HOUR
    stand_in.set_meter_aggregation_delay(60)
    _use(client, catalog, 6, clock[0] - 60)  # Stripe aggregates it a minute later
    mark = len(stand_in.events)

    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub), "deleted": True}],
            "proration_behavior": "always_invoice",
        },
    )

    paid = [e["data"]["object"] for e in stand_in.events[mark:] if e["type"] == "invoice.paid"]
    assert [invoice["total"] for invoice in paid] == [20]
    assert stand_in.subscriptions.usage.billed(catalog["customer"].id) == 2
