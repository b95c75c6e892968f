"""Customers, Stripe changes and deliveries the fault tests drive through the real services."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import pg_scalar
from tests.faults.harness import post
from tests.stripe_fixtures import stripe_subscription, webhook_secret
from tests.stripe_stand_in import signed_webhook

Event = dict[str, Any]


def cancel_now_in_stripe(stand_in: Any, customer_id: str) -> list[Event]:
    sub = stripe_subscription(stand_in, customer_id)
    mark = len(stand_in.events)
    stand_in.client().v1.subscriptions.cancel(sub["id"])
    return stand_in.events[mark:]


def current_license_token(customer_id: str) -> str:
    token = pg_scalar(
        f"SELECT token FROM licenses WHERE customer_id = '{customer_id}' "
        "AND superseded_at IS NULL ORDER BY id DESC LIMIT 1"
    )
    assert isinstance(token, str)
    return token


def deliver_webhook(client: httpx.Client, base_url: str, event: Event) -> tuple[int, Any, float]:
    """One delivery as Stripe makes it: the event signed with the endpoint secret, now."""
    payload, headers = signed_webhook(event, webhook_secret())
    return post(client, f"{base_url}/webhooks/stripe", content=payload, headers=headers)


def send_report(
    client: httpx.Client,
    base_url: str,
    token: str,
    customer_id: str,
    instance_id: str,
    timestamp: str,
    active: int,
) -> tuple[int, Any, float]:
    body = {
        "customerId": customer_id,
        "instanceId": instance_id,
        "timestamp": timestamp,
        "metrics": {"activeDevices": active, "totalDevices": active + 5},
    }
    return post(
        client,
        f"{base_url}/api/usage/report",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def count_events(event_ids: set[str], statuses: tuple[str, ...] | None = None) -> int:
    if not event_ids:
        return 0
    quoted = ", ".join(f"'{event_id}'" for event_id in event_ids)
    where = f"event_id IN ({quoted})"
    if statuses:
        where += " AND status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"
    return int(pg_scalar(f"SELECT count(*) FROM stripe_events WHERE {where}"))  # type: ignore[arg-type]


def count_reports(report_ids: set[int], *, processed: bool = False) -> int:
    if not report_ids:
        return 0
    where = "id IN (" + ", ".join(str(i) for i in report_ids) + ")"
    if processed:
        where += " AND processed_at IS NOT NULL"
    return int(pg_scalar(f"SELECT count(*) FROM usage_reports WHERE {where}"))  # type: ignore[arg-type]
