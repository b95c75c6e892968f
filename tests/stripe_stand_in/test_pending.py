"""The stand-in refuses what Stripe refuses in a pending update (adding or deleting items, other
parameters), and holds back what Stripe holds back (metadata, cancel_at_period_end) until paid."""

from __future__ import annotations

import pytest
import stripe


def _pending(items: list[dict]) -> dict:
    return {
        "items": items,
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
    }


@pytest.mark.parametrize(
    ("make_items", "param"),
    [
        (lambda sub, prices: [{"price": prices["bigger"]}], "items[0][price]"),
        (
            lambda sub, prices: [
                {"id": sub["items"]["data"][0]["id"], "price": prices["bigger"]},
                {"id": sub["items"]["data"][1]["id"], "deleted": True},
            ],
            "items[1][deleted]",
        ),
    ],
    ids=["adding an item", "deleting an item"],
)
def test_a_pending_update_may_not_add_or_delete_items(two_item_subscription, make_items, param):
    stand_in, sub, prices = two_item_subscription
    client = stand_in.client()
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.update(sub["id"], params=_pending(make_items(sub, prices)))
    assert refused.value.http_status == 400
    assert refused.value.param == param
    assert "pending_if_incomplete" in str(refused.value.user_message)
    after = client.v1.subscriptions.retrieve(sub["id"]).to_dict()
    assert [i["price"]["id"] for i in after["items"]["data"]] == [prices["flat"], prices["extra"]]


def test_a_pending_update_may_not_carry_other_parameters(two_item_subscription):
    stand_in, sub, prices = two_item_subscription
    params = _pending([{"id": sub["items"]["data"][0]["id"], "price": prices["bigger"]}])
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stand_in.client().v1.subscriptions.update(
            sub["id"], params={**params, "description": "bigger"}
        )
    assert refused.value.param == "description"


def test_a_pending_update_swaps_the_price_of_existing_items(two_item_subscription):
    stand_in, sub, prices = two_item_subscription
    flat_item = sub["items"]["data"][0]["id"]
    updated = stand_in.client().v1.subscriptions.update(
        sub["id"], params=_pending([{"id": flat_item, "price": prices["bigger"], "quantity": 1}])
    )
    assert [i["price"]["id"] for i in updated["items"]["data"]] == [
        prices["bigger"],
        prices["extra"],
    ]


def _declined_upgrade(two_item_subscription: tuple, extra: dict) -> tuple:
    stand_in, sub, prices = two_item_subscription
    client = stand_in.client()
    client.v1.subscriptions.update(sub["id"], params={"cancel_at_period_end": True})
    stand_in.decline_charges(sub["customer"])
    params = _pending([{"id": sub["items"]["data"][0]["id"], "price": prices["bigger"]}])
    updated = client.v1.subscriptions.update(sub["id"], params={**params, **extra}).to_dict()
    return stand_in, updated, prices


def test_a_pending_update_holds_cancel_at_period_end_and_metadata_until_paid(
    two_item_subscription,
):
    # Since 2026-09-30.endive a pending update takes cancel_at_period_end, and since
    # 2026-05-27.dahlia metadata: both wait in `pending_update` and apply once paid
    # (docs.stripe.com/changelog/endive/2026-09-30/scheduled-subscription-cancellation,
    # docs.stripe.com/changelog/dahlia/2026-05-27/pending-subscription-update-metadata).
    extra = {"cancel_at_period_end": False, "metadata": {"promotion": "promo_x"}}
    stand_in, pending, prices = _declined_upgrade(two_item_subscription, extra)
    assert pending["cancel_at_period_end"] is True and "promotion" not in pending["metadata"]
    assert pending["pending_update"]["cancel_at_period_end"] is False
    assert pending["pending_update"]["metadata"] == {"promotion": "promo_x"}

    stand_in.decline_charges(pending["customer"], False)
    stand_in.pay_invoice(pending["id"])
    paid = stand_in.client().v1.subscriptions.retrieve(pending["id"]).to_dict()
    assert paid["pending_update"] is None
    assert paid["items"]["data"][0]["price"]["id"] == prices["bigger"]
    assert paid["cancel_at_period_end"] is False and paid["cancel_at"] is None
    assert paid["metadata"]["promotion"] == "promo_x"


def _upgrade_invoice_is_void_and_cannot_be_paid(stand_in, pending: dict) -> None:
    invoice = stand_in.client().v1.invoices.retrieve(pending["latest_invoice"]).to_dict()
    assert invoice["status"] == "void" and invoice["amount_remaining"] == 0
    stand_in.decline_charges(pending["customer"], False)
    with pytest.raises(Exception, match="no open invoice"):
        stand_in.pay_invoice(pending["id"])


def test_an_expired_pending_update_drops_what_it_held_and_voids_its_invoice(
    two_item_subscription,
):
    # "If you don't take any action after an update fails, the invoice is voided and the pending
    # update is discarded after the expires_at time" (docs.stripe.com/billing/subscriptions/
    # pending-updates-reference, "Expiration").
    extra = {"cancel_at_period_end": False, "metadata": {"promotion": "promo_x"}}
    stand_in, pending, prices = _declined_upgrade(two_item_subscription, extra)
    events = stand_in.expire_pending_update(pending["id"])
    assert [e["type"] for e in events] == [
        "invoice.voided",
        "customer.subscription.pending_update_expired",
    ]
    after = stand_in.client().v1.subscriptions.retrieve(pending["id"]).to_dict()
    assert after["pending_update"] is None and after["cancel_at_period_end"] is True
    assert after["items"]["data"][0]["price"]["id"] == prices["flat"]
    assert "promotion" not in after["metadata"]
    _upgrade_invoice_is_void_and_cannot_be_paid(stand_in, pending)


def test_a_pending_update_expires_within_23_hours_or_at_the_period_end(two_item_subscription):
    # expires_at: the trial end or the period end, whichever comes first, at most 23 hours after
    # the update (pending-updates-reference, "Expiration").
    stand_in, pending, _ = _declined_upgrade(two_item_subscription, {})
    expires_at = pending["pending_update"]["expires_at"]
    period_end = pending["items"]["data"][0]["current_period_end"]
    now = stand_in.store.now()
    assert now < expires_at <= min(period_end, now + 23 * 3600)
    # Still unpaid when the period ends: the old plan renews, the upgrade's invoice is void.
    stand_in.decline_charges(pending["customer"], False)
    events = stand_in.advance_period(pending["id"])
    assert "customer.subscription.pending_update_expired" in [e["type"] for e in events]
    invoice = stand_in.client().v1.invoices.retrieve(pending["latest_invoice"]).to_dict()
    assert invoice["status"] == "void"


def test_a_conflicting_cancel_at_period_end_expires_the_pending_update(two_item_subscription):
    # "If a subsequent update includes a conflicting cancel_at_period_end value, Stripe expires
    # the existing pending update" (changelog 2026-09-30.endive).
    stand_in, pending, prices = _declined_upgrade(
        two_item_subscription, {"cancel_at_period_end": False}
    )
    mark = len(stand_in.events)
    client = stand_in.client()
    after = client.v1.subscriptions.update(pending["id"], params={"cancel_at_period_end": True})
    assert after["pending_update"] is None and after["cancel_at_period_end"] is True
    assert "customer.subscription.pending_update_expired" in [
        e["type"] for e in stand_in.events[mark:]
    ]
    # Its invoice is void: nobody can pay it, so nothing of it is ever applied.
    _upgrade_invoice_is_void_and_cannot_be_paid(stand_in, pending)
    after = client.v1.subscriptions.retrieve(pending["id"]).to_dict()
    assert after["items"]["data"][0]["price"]["id"] == prices["flat"]
    assert after["cancel_at_period_end"] is True


def test_an_ended_subscription_cannot_be_paid_back_to_active(two_item_subscription):
    stand_in, sub, _ = two_item_subscription
    stand_in.fail_payment(sub["id"])
    stand_in.client().v1.subscriptions.cancel(sub["id"])
    with pytest.raises(Exception, match="is canceled"):
        stand_in.pay_invoice(sub["id"])
    after = stand_in.client().v1.subscriptions.retrieve(sub["id"]).to_dict()
    assert after["status"] == "canceled"
