"""The stand-in's customer portal configurations and sessions, through the real SDK."""

from __future__ import annotations

import pytest
import stripe

from tests.stripe_stand_in.conftest import reference_fields


def test_a_configuration_is_made_listed_and_named_by_a_session(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": "p@example.com"})
    made = client.v1.billing_portal.configurations.create(
        params={
            "features": {
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "subscription_update": {"enabled": False},
            },
            "metadata": {"owner": "us"},
        }
    )
    shape = made.to_dict()
    assert not set(shape) - reference_fields(stripe.billing_portal.Configuration) - {"object"}
    assert made.id.startswith("bpc_") and made.active and not made.is_default
    assert made.features.subscription_cancel.mode == "at_period_end"
    assert made.features.subscription_update.enabled is False
    assert made.features.customer_update.enabled is False  # not given: off
    assert client.v1.billing_portal.configurations.retrieve(made.id).metadata.to_dict() == {
        "owner": "us"
    }
    listed = client.v1.billing_portal.configurations.list(params={"is_default": False}).data
    assert [found.id for found in listed] == [made.id]

    named = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "configuration": made.id}
    )
    assert named.configuration == made.id
    # Without one, the account's default applies: the Dashboard's, plan switching on.
    default = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    default_config = client.v1.billing_portal.configurations.retrieve(default.configuration)
    assert default_config.is_default and default_config.features.subscription_update.enabled


def test_a_session_refuses_an_unknown_or_inactive_configuration(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": "q@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.billing_portal.sessions.create(
            params={"customer": customer.id, "configuration": "bpc_nope"}
        )
    assert unknown.value.param == "configuration"
    made = client.v1.billing_portal.configurations.create(
        params={"features": {"invoice_history": {"enabled": True}}}
    )
    client.v1.billing_portal.configurations.update(made.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError) as inactive:
        client.v1.billing_portal.sessions.create(
            params={"customer": customer.id, "configuration": made.id}
        )
    assert inactive.value.param == "configuration"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.billing_portal.configurations.create(
            params={"features": {"subscription_cancel": {"mode": "at_period_end"}}}
        )
    assert missing.value.param == "features[subscription_cancel][enabled]"
