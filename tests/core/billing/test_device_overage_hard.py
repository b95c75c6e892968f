"""DEVICE_OVERAGE=hard: overage is not sold. Checkout sells the flat price only, licenses say
`deviceLimit: hard`, no day is metered, and the usage viewer shows no charge."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest

from core.billing.metering.days import record_day
from core.db import session_scope
from core.settings import get_settings
from core.usage.rollups import rollup_day
from tests.api.test_usage_overage import report
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import (
    handle_inline,
    license_claims,
    new_customer,
    start_checkout,
    stripe_subscription,
)
from tests.stripe_stand_in import StripeStandIn


@pytest.fixture
def hard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DEVICE_OVERAGE", "hard")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_hard_device_limit_sells_meters_and_shows_no_overage(
    stand_in: StripeStandIn, hard: None, api_client, admin_headers
) -> None:
    customer_id = new_customer("hard@example.com")
    handle_inline(start_checkout(stand_in, customer_id, "starter"))

    sub = stripe_subscription(stand_in, customer_id)
    assert [item["price"]["recurring"]["usage_type"] for item in sub["items"]["data"]] == [
        "licensed"
    ]
    claims = license_claims(customer_id)
    assert claims["plan"] == "starter" and claims["deviceLimit"] == "hard"

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    report(customer_id, "edge-1", 25, datetime.combine(yesterday, time(3), tzinfo=UTC))
    with session_scope() as session:
        rollup_day(session, yesterday)
    with session_scope() as session:
        assert record_day(session, yesterday).recorded == 0

    shown = api_client.get(f"/api/usage/{customer_id}?days=2", headers=admin_headers)
    overage = shown.json()["overage"]
    assert overage["billed"] is False and overage["estimatedChargeCents"] == 0
    assert [day["billableDeviceDays"] for day in overage["daily"]] == [0, 0]
