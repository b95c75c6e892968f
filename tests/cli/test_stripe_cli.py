"""`billing stripe setup|events|replay` and `billing customer upgrade|deactivate|portal|show`."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.customers import when
from cli.main import app
from tests.conftest import pg_scalar
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import handle_inline, license_claims, new_customer, subscription_row

runner = CliRunner()


def test_setup_prints_the_settings_lines(stand_in):
    result = runner.invoke(app, ["stripe", "setup"])
    assert result.exit_code == 0, result.output
    for plan in ("STARTER", "PROFESSIONAL"):
        line = next(x for x in result.output.splitlines() if x.startswith(f"STRIPE_PRICE_{plan}="))
        assert line.split("=", 1)[1].startswith("price_")
    assert "$29.00/mo" in result.output and "$99.00/mo" in result.output
    portal = next(x for x in result.output.splitlines() if x.startswith("STRIPE_PORTAL_"))
    configuration = stand_in.client().v1.billing_portal.configurations.retrieve(
        portal.split("=", 1)[1]
    )
    assert configuration.features.subscription_update.enabled is False
    # Run again (the fixture ran it once already): still one configuration of ours.
    assert runner.invoke(app, ["stripe", "setup"]).exit_code == 0
    ours = stand_in.client().v1.billing_portal.configurations.list(params={"is_default": False})
    assert [found.id for found in ours.data] == [configuration.id]


def test_setup_without_key_says_which_setting_is_missing():
    result = runner.invoke(app, ["stripe", "setup"])
    assert result.exit_code == 1
    assert "STRIPE_SECRET_KEY" in result.output


def test_upgrade_prints_checkout_url_and_deactivate_returns_to_trial(stand_in):
    customer_id = new_customer()
    result = runner.invoke(
        app, ["customer", "upgrade", "--id", customer_id, "--plan", "professional"]
    )
    assert result.exit_code == 0, result.output
    assert "✅ Checkout session created!" in result.output
    session_id = next(
        line.split()[-1] for line in result.output.splitlines() if line.startswith("Session ID:")
    )
    assert f"https://checkout.stripe.com/c/pay/{session_id}" in result.output
    assert "Plan:             professional" in result.output

    # The buyer pays; the events are handled (here inline, as `billing stripe replay` does).
    events = stand_in.complete_checkout(session_id)
    handle_inline(events)
    assert subscription_row(customer_id)["plan"] == "professional"

    # A paying customer is not sent to a second checkout: the live subscription changes plan.
    change = runner.invoke(app, ["customer", "upgrade", "--id", customer_id, "--plan", "starter"])
    assert change.exit_code == 0, change.output
    assert "plan changed" in change.output and "Checkout URL" not in change.output
    assert subscription_row(customer_id)["plan"] == "starter"
    assert license_claims(customer_id)["plan"] == "starter"

    listing = runner.invoke(app, ["stripe", "events"])
    assert listing.exit_code == 0
    assert "checkout.session.completed" in listing.output and "processed" in listing.output

    # By default a paying customer keeps what they paid for: the subscription ends at period end.
    scheduled = runner.invoke(app, ["customer", "deactivate", "--id", customer_id])
    assert scheduled.exit_code == 0, scheduled.output
    assert "deactivated at the end of the paid period" in scheduled.output
    period_end = when(subscription_row(customer_id)["current_period_ends_at"])
    assert f"Access Ends:      {period_end}" in scheduled.output
    assert subscription_row(customer_id)["plan"] == "starter"
    assert license_claims(customer_id)["subscription"]["status"] == "active"
    scheduled_sub = stand_in.client().v1.subscriptions.retrieve(
        subscription_row(customer_id)["stripe_subscription_id"]
    )
    assert scheduled_sub["cancel_at_period_end"] is True

    # --now ends it at once (unused time credited) and returns the customer to the trial tier.
    result = runner.invoke(app, ["customer", "deactivate", "--id", customer_id, "--now"])
    assert result.exit_code == 0, result.output
    assert "✅ Customer deactivated successfully!" in result.output
    assert "Previous Plan:    starter" in result.output
    sub_id = subscription_row(customer_id)["stripe_subscription_id"]
    assert f"Subscription ID:  {sub_id}" in result.output
    row = subscription_row(customer_id)
    assert row["plan"] == "trial" and row["status"] == "trialing"  # still in its first 14 days
    assert license_claims(customer_id)["plan"] == "trial"
    assert stand_in.client().v1.subscriptions.retrieve(sub_id)["status"] == "canceled"

    again = runner.invoke(app, ["customer", "deactivate", "--id", customer_id])
    assert again.exit_code == 0 and "already on the trial tier" in again.output


def test_replay_processes_an_event_again_or_fetches_it_from_stripe(stand_in):
    customer_id = new_customer()
    upgrade = runner.invoke(app, ["customer", "upgrade", "--id", customer_id, "--plan", "starter"])
    session_id = next(
        line.split()[-1] for line in upgrade.output.splitlines() if line.startswith("Session ID:")
    )
    events = stand_in.complete_checkout(session_id)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")

    # Never received by the webhook: replay fetches it from Stripe, stores and handles it.
    result = runner.invoke(app, ["stripe", "replay", completed["id"]])
    assert result.exit_code == 0, result.output
    assert "fetched it from Stripe" in result.output
    assert "processed" in result.output
    assert subscription_row(customer_id)["plan"] == "starter"
    assert (
        pg_scalar(f"SELECT source FROM stripe_events WHERE event_id = '{completed['id']}'")
        == "reconciliation"
    )
    # Replaying a handled event is safe: same state, no new license.
    count = pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{customer_id}'")
    again = runner.invoke(app, ["stripe", "replay", completed["id"]])
    assert again.exit_code == 0 and "unchanged" in again.output
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{customer_id}'") == count

    unknown = runner.invoke(app, ["stripe", "replay", "evt_unknown"])
    assert unknown.exit_code == 1


def _paying_customer(stand_in) -> str:
    customer_id = new_customer()
    upgrade = runner.invoke(app, ["customer", "upgrade", "--id", customer_id, "--plan", "starter"])
    session_id = next(
        line.split()[-1] for line in upgrade.output.splitlines() if line.startswith("Session ID:")
    )
    handle_inline(stand_in.complete_checkout(session_id))
    return customer_id


def test_a_promo_code_is_not_dropped_on_a_plan_change(stand_in):
    customer_id = _paying_customer(stand_in)
    client = stand_in.client()
    coupon = client.v1.coupons.create(params={"percent_off": 25, "duration": "once"})
    client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon["id"]}, "code": "UPGRADE25"}
    )
    result = runner.invoke(
        app,
        ["customer", "upgrade", "--id", customer_id, "--plan", "professional"]
        + ["--promo-code", "UPGRADE25"],
    )
    assert result.exit_code == 0, result.output
    assert "Access Ends:      renews (no end)" in result.output
    sub = client.v1.subscriptions.retrieve(subscription_row(customer_id)["stripe_subscription_id"])
    assert len(sub["discounts"]) == 1
    # The upgrade's invoice was discounted by the code.
    upgrade_invoice = client.v1.invoices.retrieve(sub["latest_invoice"])
    assert upgrade_invoice["billing_reason"] == "subscription_update"


def test_portal_prints_the_link(stand_in):
    customer_id = _paying_customer(stand_in)
    result = runner.invoke(
        app, ["customer", "portal", "--id", customer_id, "--return-url", "https://x.example/"]
    )
    assert result.exit_code == 0, result.output
    assert "https://billing.stripe.com/p/session/" in result.output
    unknown = runner.invoke(app, ["customer", "portal", "--id", new_customer("new@example.com")])
    assert unknown.exit_code == 1 and "no Stripe customer yet" in unknown.output


def test_show_lists_billing_conflicts(stand_in):
    from core.settings import get_settings

    customer_id = _paying_customer(stand_in)
    stripe_customer = pg_scalar(
        f"SELECT stripe_customer_id FROM customers WHERE customer_id = '{customer_id}'"
    )
    mark = len(stand_in.events)
    second = stand_in.create_subscription_directly(
        str(stripe_customer), get_settings().stripe_price_starter, {"customerId": customer_id}
    )
    handle_inline(stand_in.events[mark:])
    shown = runner.invoke(app, ["customer", "show", customer_id])
    assert shown.exit_code == 0, shown.output
    assert "Billing Conflict" in shown.output and second["id"] in shown.output
