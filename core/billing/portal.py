"""Our Stripe customer portal configuration: what a customer may do there.

A portal session that names no configuration gets the account's default, which the Dashboard
makes and which lets customers switch plans (docs.stripe.com/api/customer_portal/sessions/create,
`configuration`): a switch there would skip our plan-change rules (upgrades charged before they
apply, the overage item moved with the plan). So `billing stripe setup` creates ours (payment
methods, invoices, cancelling at the period's end; no plan switching, no immediate cancellation)
and every portal session names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.billing.gateway import StripeGateway, StripeNotConfiguredError
from core.settings import get_settings

# Marks the configuration as ours, so setup finds it again (Stripe has no lookup key for it).
MARKER = {"zemfyre_portal": "1"}
SETTING = "STRIPE_PORTAL_CONFIGURATION"

# docs.stripe.com/api/customer_portal/configurations/create: each feature named is enabled or
# not; cancellation at the period's end without proration keeps the paid period and bills
# nothing more (our licenses run to the period's end).
FEATURES: dict[str, Any] = {
    "customer_update": {"enabled": True, "allowed_updates": ["email", "address", "name"]},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {
        "enabled": True,
        "mode": "at_period_end",
        "proration_behavior": "none",
    },
    "subscription_update": {"enabled": False},
}


@dataclass(frozen=True)
class PortalSetup:
    configuration_id: str
    created: bool

    @property
    def setting(self) -> str:
        return f"{SETTING}={self.configuration_id}"


def setup_portal(gateway: StripeGateway) -> PortalSetup:
    """Create our portal configuration, or bring the one made before back to our features (an
    edit in the Dashboard that turned plan switching on is undone). Safe to repeat."""
    found = gateway.find_portal_configuration(MARKER)
    if found is None:
        made = gateway.create_portal_configuration(features=FEATURES, metadata=MARKER)
        return PortalSetup(str(made["id"]), created=True)
    gateway.update_portal_configuration(str(found["id"]), features=FEATURES)
    return PortalSetup(str(found["id"]), created=False)


def configuration_id(gateway: StripeGateway) -> str:
    """The configuration every portal session names: STRIPE_PORTAL_CONFIGURATION, else ours
    found by its marker. Never the account's default: a portal without ours is a set-up
    mistake, refused naming the setting."""
    configured = get_settings().stripe_portal_configuration
    if configured:
        return configured
    found = gateway.find_portal_configuration(MARKER)
    if found is None or not found.get("active"):
        state = "no" if found is None else "only a deactivated"
        raise StripeNotConfiguredError(
            f"{state} customer portal configuration of ours in Stripe: set {SETTING} or run "
            "`billing stripe setup`",
            field=SETTING,
        )
    return str(found["id"])
