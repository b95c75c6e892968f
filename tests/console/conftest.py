"""Console fixtures: a test client signed in as an operator or a viewer."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

ORIGIN = "http://testserver"


def new_key(name: str, role: str = "operator") -> str:
    from core.api_keys import create_api_key
    from core.db import session_scope

    with session_scope() as session:
        return create_api_key(session, name, role).key


def sign_in(client, key: str) -> str:  # type: ignore[no-untyped-def]
    """Signs the client in; the CSRF token its pages carry."""
    answer = client.post(
        "/console/login", data={"api_key": key}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/console/customers").text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@pytest.fixture
def console_client() -> Iterator[object]:
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def operator(console_client) -> tuple[object, str]:  # type: ignore[no-untyped-def]
    """A client signed in with an operator's key, and its CSRF token."""
    return console_client, sign_in(console_client, new_key("alice@ops"))


@pytest.fixture
def viewer(console_client) -> tuple[object, str]:  # type: ignore[no-untyped-def]
    return console_client, sign_in(console_client, new_key("victor@support", "viewer"))


@dataclass(frozen=True)
class SeededCustomer:
    customer_id: str
    stripe_customer_id: str
    jti: str


def seed_customer(*, email: str = "ops@acme.example", company: str = "Acme GmbH") -> SeededCustomer:
    """A paying professional customer (limit 50, overage billed) with 30 days of usage from two
    instances (edge-munich silent for two days, on a previous license), a paid invoice's Stripe
    event, a sent meter event, and an operator's reissue in the audit log."""
    from sqlalchemy import update

    from core import audit
    from core.customers.service import create_customer
    from core.db import session_scope
    from core.licensing.service import current_license, reissue_license
    from core.usage.parsing import ReportInput
    from core.usage.processing import process_reports
    from models import Customer, OverageMeterEvent, StripeEvent, Subscription, utcnow
    from tests.helpers.reports import store_report

    now = utcnow()
    stripe_customer_id = f"cus_{uuid.uuid4().hex[:14]}"
    with session_scope() as session:
        customer_id = create_customer(session, email=email, company_name=company).customer_id
        session.execute(
            update(Customer)
            .where(Customer.customer_id == customer_id)
            .values(stripe_customer_id=stripe_customer_id)
        )
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(
                plan="professional",
                status="active",
                stripe_subscription_id=f"sub_{uuid.uuid4().hex[:14]}",
                current_period_ends_at=now + timedelta(days=20),
                paid_through_at=now + timedelta(days=20),
                metered_since=now - timedelta(days=40),
                trial_ends_at=None,
            )
        )
        session.flush()
        previous = current_license(session, customer_id)
        assert previous is not None
        current = reissue_license(session, customer_id, reason="paid")
        assert current is not None
        for days_ago in range(29, -1, -1):
            at = now - timedelta(days=days_ago, minutes=5)
            # Berlin runs at 25-31 devices, 60 on the last three days; with Munich's 19 the
            # customer stays within the limit of 50 until then.
            store_report(
                session,
                ReportInput(
                    customer_id, "edge-berlin", 60 if days_ago < 3 else 25 + days_ago % 7, 70, at
                ),
                license_jti=current.jti,
            )
            if days_ago >= 2:
                store_report(
                    session,
                    ReportInput(customer_id, "edge-munich", 19, 20, at),
                    license_jti=previous.jti,
                )
        process_reports(session, limit=10_000, now=now)
        session.add(
            StripeEvent(
                event_id=f"evt_{uuid.uuid4().hex[:14]}",
                type="invoice.paid",
                payload={
                    "id": "evt_x",
                    "type": "invoice.paid",
                    "data": {"object": {"customer": stripe_customer_id, "amount_paid": 9900}},
                },
                stripe_created=int(now.timestamp()) - 86400,
                status="processed",
                received_at=now - timedelta(days=1),
                processed_at=now - timedelta(days=1),
                # Handled: its customer recorded (core/billing/event_customers.py).
                customer_id=customer_id,
            )
        )
        session.add(
            OverageMeterEvent(
                customer_id=customer_id,
                day=(now - timedelta(days=1)).date(),
                value=10,
                plan="professional",
                stripe_customer_id=stripe_customer_id,
                event_name="zemfyre_device_overage",
                identifier=f"{customer_id}-{(now - timedelta(days=1)).date()}-0",
                created_at=now - timedelta(hours=1),
                sent_at=now - timedelta(hours=1),
            )
        )
        audit.act_as(session, "alice@ops")
        audit.record(session, "license.reissue", customer_id=customer_id, reason="lost copy")
        return SeededCustomer(customer_id, stripe_customer_id, current.jti)
