"""GET /api/usage/{customerId} shows the billable overage per day and the period's estimate."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import update

from core.customers.service import create_customer
from core.db import session_scope
from core.usage.parsing import ReportInput
from models import Subscription
from tests.helpers.reports import store_report


def paying(email: str, plan: str, status: str, period_ends_at: datetime) -> str:
    with session_scope() as session:
        cid = create_customer(session, email=email, plan=plan).customer_id
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == cid)
            .values(
                plan=plan,
                status=status,
                stripe_subscription_id=f"sub_{cid}",
                current_period_ends_at=period_ends_at,
            )
        )
    return cid


def report(cid: str, instance: str, active: int, at: datetime) -> None:
    with session_scope() as session:
        store_report(session, ReportInput(cid, instance, active, active, at), license_jti=None)


def test_usage_shows_the_overage_per_day_and_the_estimated_charge(
    api_client, admin_headers
) -> None:
    now = datetime.now(UTC)
    today = now.date()
    midnight = datetime.combine(today, time.min, tzinfo=UTC)
    cid = paying("meter@example.com", "starter", "active", now + timedelta(days=20))
    report(cid, "a", 12, midnight - timedelta(hours=20))  # yesterday: 2 above 10
    report(cid, "a", 13, midnight)  # today: 13 + 1 = 14, 4 above 10
    report(cid, "b", 1, midnight)

    response = api_client.get(f"/api/usage/{cid}?days=2", headers=admin_headers)

    assert response.status_code == 200, response.text
    overage = response.json()["overage"]
    assert overage["billed"] is True
    assert overage["unitPriceCents"] == 10
    assert overage["daily"] == [
        {"day": (today - timedelta(days=1)).isoformat(), "billableDeviceDays": 2},
        {"day": today.isoformat(), "billableDeviceDays": 4},
    ]
    assert overage["periodDeviceDays"] == 6
    assert overage["estimatedChargeCents"] == 60


def test_a_trial_shows_no_overage(api_client, admin_headers) -> None:
    now = datetime.now(UTC)
    cid = paying("trying@example.com", "professional", "trialing", now + timedelta(days=5))
    report(cid, "a", 90, now - timedelta(minutes=5))

    overage = api_client.get(f"/api/usage/{cid}?days=1", headers=admin_headers).json()["overage"]

    assert overage["billed"] is False
    assert overage["estimatedChargeCents"] == 0
    assert [day["billableDeviceDays"] for day in overage["daily"]] == [0]
