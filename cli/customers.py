"""`billing customer add|list|show|upgrade|deactivate|portal`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from cli.common import RULE, console, db_session, field_line, print_table

app = typer.Typer(help="Customers.", no_args_is_help=True)

LIST_RULE = "─" * 77


def when(value: datetime | str | None) -> str:
    """A time as operators read it: 10/21/2025, 10:30:00 AM (UTC)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%m/%d/%Y, %I:%M:%S %p")


def print_env_lines(token: str, customer_id: str) -> None:
    console.print("💡 Add this to customer instance .env file:")
    console.print(f"LICENSE_JWT={token}", soft_wrap=True)
    console.print(f"CUSTOMER_ID={customer_id}", soft_wrap=True)


@app.command()
def add(
    email: str = typer.Option(..., "--email", help="The customer's email (unique)"),
    name: str = typer.Option(None, "--name", help="Contact name"),
    company: str = typer.Option(None, "--company", help="Company name"),
    plan: str = typer.Option(None, "--plan", help="Plan to trial (default: trial)"),
) -> None:
    """Create a customer with a 14-day trial and print its first license."""
    from core.customers import service

    # In-process, the same service call as POST /api/customers (core/customers/service.py says
    # why); printed after the commit, so a success line always means the customer exists.
    with db_session() as session:
        customer = service.create_customer(
            session, email=email, name=name, company_name=company, plan=plan
        )
        detail = service.customer_detail(session, customer.customer_id)
    subscription, license_row = detail.subscription, detail.license
    assert subscription is not None and license_row is not None
    console.print("✅ Customer created successfully!")
    console.print("Customer Details:")
    console.print(RULE)
    console.print(field_line("ID", customer.customer_id), soft_wrap=True)
    console.print(field_line("Email", customer.email), soft_wrap=True)
    console.print(field_line("Name", customer.name), soft_wrap=True)
    console.print(field_line("Company", customer.company_name), soft_wrap=True)
    console.print(field_line("Plan", subscription.plan))
    console.print(field_line("Trial Ends", when(subscription.trial_ends_at)))
    console.print(field_line("Created", when(customer.created_at)))
    console.print(RULE)
    console.print()
    console.print("📜 Initial License JWT (Trial):")
    console.print(license_row.token, soft_wrap=True)
    console.print()
    print_env_lines(license_row.token, customer.customer_id)


@app.command("list")
def list_customers(
    limit: int = typer.Option(100, min=1, max=1000, help="How many to show"),
    offset: int = typer.Option(0, min=0, help="How many to skip"),
) -> None:
    """List customers."""
    from core.customers import service

    with db_session() as session:
        rows, total = service.list_customers(session, limit=limit, offset=offset)
    print_table(
        f"Found {total} customer(s):\n",
        [("ID", 21), ("Email", 28), ("Name", 21), ("Company", 0)],
        ((row.customer_id, row.email, row.name or "-", row.company_name or "-") for row in rows),
        LIST_RULE,
    )


@app.command()
def show(customer_id: str = typer.Argument(..., help="The customer's id (cust_…)")) -> None:
    """Show a customer with its subscription and current license."""
    from core.customers import service

    with db_session() as session:
        detail = service.customer_detail(session, customer_id)
        customer, subscription, license_row = detail.customer, detail.subscription, detail.license
        console.print("Customer Details:")
        console.print(RULE)
        console.print(field_line("ID", customer.customer_id))
        console.print(field_line("Email", customer.email), soft_wrap=True)
        console.print(field_line("Name", customer.name), soft_wrap=True)
        console.print(field_line("Company", customer.company_name), soft_wrap=True)
        console.print(field_line("Stripe Customer", customer.stripe_customer_id))
        console.print(field_line("Created", when(customer.created_at)))
        console.print(RULE)
        if subscription is not None:
            console.print(field_line("Plan", subscription.plan.upper()))
            console.print(field_line("Status", subscription.status.upper()))
            console.print(field_line("Trial Ends", when(subscription.trial_ends_at)))
            console.print(field_line("Renewal Date", when(subscription.current_period_ends_at)))
        if customer.license_revoked_at is not None:
            reason = customer.license_revoked_reason or "no reason given"
            console.print(
                field_line("License Revoked", f"{when(customer.license_revoked_at)} ({reason})")
            )
        if license_row is not None:
            console.print(field_line("License", license_row.jti))
            console.print(field_line("License Expires", when(license_row.expires_at)))
        print_billing_issues(session, customer.customer_id)
        console.print(RULE)


# -- Stripe: upgrade, deactivate, portal, billing issues ----------------------------------------


def print_billing_issues(session: Any, customer_id: str) -> None:
    """Open billing issues (a second live subscription, a disputed charge): never hidden."""
    from core.billing import issues

    for issue in issues.open_issues(session, customer_id):
        label = "⚠️  Billing Conflict" if issue.kind == issues.CONFLICT else "⚠️  Dispute"
        console.print(
            field_line(label, f"{issue.stripe_object_id}: {issue.detail}"), soft_wrap=True
        )


def _access_line(access_ends_at: datetime | None) -> str:
    return "renews (no end)" if access_ends_at is None else when(access_ends_at)


def _print_checkout(result: Any) -> None:
    console.print("✅ Checkout session created!")
    console.print("Checkout Details:")
    console.print(RULE)
    console.print(field_line("Session ID", result.session_id), soft_wrap=True)
    console.print(field_line("Plan", result.plan))
    if result.promotion_code:
        console.print(field_line("Promo Code", result.promotion_code))
    console.print(RULE)
    console.print()
    console.print("🔗 Checkout URL:")
    console.print(result.url, soft_wrap=True)
    console.print()
    console.print("💡 Send this URL to the customer to complete payment.")
    console.print("   After payment, webhook will auto-provision subscription.")
    console.print("   Earlier unpaid checkout links of this customer no longer work.")


def _print_plan_change(change: Any) -> None:
    if change.previous_plan == change.plan and not change.pending_payment:
        console.print(f"✅ Subscription on {change.plan}: no plan change needed.")
    elif change.pending_payment:
        console.print("⏳ Upgrade invoiced: the new plan is granted once the invoice is paid.")
    else:
        console.print(
            "✅ Subscription plan changed (upgrades are invoiced now, downgrades credited)!"
        )
    console.print(RULE)
    console.print(field_line("Customer ID", change.customer_id))
    console.print(field_line("Subscription ID", change.subscription_id))
    console.print(field_line("Previous Plan", change.previous_plan))
    console.print(field_line("Plan", change.plan))
    console.print(field_line("Status", change.status))
    console.print(field_line("Access Ends", _access_line(change.access_ends_at)))
    console.print(RULE)


@app.command()
def upgrade(
    customer_id: str = typer.Option(..., "--id", help="The customer's id (cust_…)"),
    plan: str = typer.Option(..., "--plan", help="starter, professional or enterprise"),
    promo_code: str = typer.Option(None, "--promo-code", help="Apply this promotion code"),
    success_url: str = typer.Option(None, "--success-url", help="Where Stripe sends payers"),
    cancel_url: str = typer.Option(None, "--cancel-url", help="Where Stripe sends quitters"),
) -> None:
    """Create a Stripe checkout for a paid plan (or change the plan of a paying customer)."""
    from core.billing import checkout
    from core.billing.changes import SubscriptionChange
    from core.billing.gateway import get_gateway
    from core.db import session_scope

    with db_session() as session:
        result = checkout.subscribe(
            session,
            get_gateway(),
            customer_id=customer_id,
            plan=plan,
            transaction=session_scope,
            success_url=success_url,
            cancel_url=cancel_url,
            promo_code=promo_code,
        )
    if isinstance(result, SubscriptionChange):
        _print_plan_change(result)
    else:
        _print_checkout(result)


@app.command()
def deactivate(
    customer_id: str = typer.Option(..., "--id", help="The customer's id (cust_…)"),
    now: bool = typer.Option(
        False,
        "--now",
        help="End access now (final invoice credits unused time) instead of at period end",
    ),
) -> None:
    """Stop the customer's paid subscription at the end of the period paid for, or --now: at
    once, with unused time credited, back to the trial tier."""
    from core.billing import changes
    from core.billing.gateway import get_gateway, stripe_configured
    from core.db import session_scope

    with db_session() as session:
        gateway = get_gateway() if stripe_configured() else None
        done = changes.deactivate_customer(
            session, gateway, customer_id, transaction=session_scope, immediately=now
        )
    if done.at_period_end:
        console.print("✅ Customer deactivated at the end of the paid period.")
    elif done.stripe_canceled or done.previous_plan != done.plan:
        console.print("✅ Customer deactivated successfully!")
    else:
        console.print("✅ Customer was already on the trial tier: nothing to cancel.")
    console.print("Deactivation Details:")
    console.print(RULE)
    console.print(field_line("Customer ID", done.customer_id))
    console.print(field_line("Subscription ID", done.subscription_id))
    console.print(field_line("Previous Plan", done.previous_plan))
    console.print(field_line("Cancelled At", when(done.canceled_at)))
    console.print(field_line("Access Ends", when(done.access_ends_at)))
    console.print(field_line("Now", f"{done.plan} ({done.status})"))
    console.print(field_line("License", "reissued" if done.license_reissued else "unchanged"))
    console.print(RULE)
    console.print()
    if done.at_period_end:
        console.print(f"💡 {done.plan} stays paid for until {when(done.access_ends_at)}; the")
        console.print("   subscription then ends. Use --now to end it at once (unused time is")
        console.print("   credited). They can reactivate by subscribing again.")
    else:
        console.print("💡 Customer is on the trial tier now.")
        console.print("   They can reactivate by subscribing again.")


@app.command()
def portal(
    customer_id: str = typer.Option(..., "--id", help="The customer's id (cust_…)"),
    return_url: str = typer.Option(
        None, "--return-url", help="Where the portal sends the customer back (default: ours)"
    ),
) -> None:
    """Print a Stripe customer portal link: the customer manages cards and invoices there."""
    from core.billing import changes
    from core.billing.gateway import get_gateway
    from core.settings import get_settings

    url = return_url or get_settings().public_base_url
    with db_session() as session:
        link = changes.portal_url(session, get_gateway(), customer_id, url)
    console.print("🔗 Customer portal (send this link to the customer; it is valid briefly):")
    console.print(link, soft_wrap=True)
