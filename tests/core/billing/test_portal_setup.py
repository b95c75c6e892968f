"""`billing stripe setup`'s customer portal configuration: found again even when someone
deactivated it in the Dashboard, and brought back (active, our features) rather than a second
one made beside it."""

from __future__ import annotations

import pytest

from core.billing.gateway import StripeNotConfiguredError, get_gateway
from core.billing.portal import MARKER, configuration_id, setup_portal
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_stand_in import StripeStandIn


def ours(stand_in: StripeStandIn) -> list[dict]:
    listed = [c.to_dict() for c in stand_in.client().v1.billing_portal.configurations.list().data]
    return [c for c in listed if all(c["metadata"].get(k) == v for k, v in MARKER.items())]


def test_a_deactivated_configuration_is_reactivated_not_made_again(
    stand_in: StripeStandIn,
) -> None:
    gateway = get_gateway()
    first = setup_portal(gateway)
    client = stand_in.client()
    client.v1.billing_portal.configurations.update(first.configuration_id, params={"active": False})
    with pytest.raises(StripeNotConfiguredError) as refused:
        configuration_id(gateway)
    assert "deactivated" in refused.value.message

    again = setup_portal(gateway)

    assert again.configuration_id == first.configuration_id and not again.created
    (configuration,) = ours(stand_in)
    assert configuration["active"] is True
    assert configuration_id(gateway) == first.configuration_id
