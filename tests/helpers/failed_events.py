"""A Stripe event the worker gave up on: its checkout delivered while Stripe was down, retried
once (STRIPE_EVENT_MAX_RETRIES=1), left `failed` for an operator; Stripe is back afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from core.settings import get_settings
from tests.conftest import pg_scalar
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import deliver, new_customer, start_checkout


def failed_checkout_event(
    stand_in: Any, api_client: Any, monkeypatch: pytest.MonkeyPatch, **customer: Any
) -> tuple[str, dict[str, Any]]:
    """The customer and its `checkout.session.completed` event, failed for good."""
    monkeypatch.setenv("STRIPE_EVENT_MAX_RETRIES", "1")
    get_settings.cache_clear()
    customer_id = new_customer(**customer)
    events = start_checkout(stand_in, customer_id)
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    stand_in.set_down(True)
    deliver(api_client, completed)
    wait_until(lambda: pg_scalar("SELECT status FROM stripe_events") == "failed", timeout=30)
    stand_in.set_down(False)
    return customer_id, completed
