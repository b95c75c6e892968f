"""Concurrent usage reports to a real API process share transactions and tasks."""

from __future__ import annotations

import asyncio

import httpx

from core.customers.service import create_customer
from core.db import session_scope
from core.licensing.revocation import revoke_license
from core.licensing.service import current_license
from tests.conftest import pg_scalar
from tests.helpers.processes import api_server
from tests.helpers.waiting import wait_until


def _customer(email: str) -> tuple[str, str]:
    with session_scope() as session:
        customer = create_customer(session, email=email, name="Batch Co")
        return customer.customer_id, current_license(session, customer.customer_id).token


async def _send_all(url: str, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/api/usage/report", json=body, headers={"Authorization": f"Bearer {token}"}
                )
                for token, body in requests
            )
        )


def test_concurrent_reports_are_stored_in_shared_transactions_each_once(request) -> None:
    good_id, good_token = _customer("good@batch.example")
    revoked_id, revoked_token = _customer("revoked@batch.example")
    with session_scope() as session:
        revoke_license(session, revoked_id, reason="test")

    def body(customer_id: str, n: int) -> dict:
        return {
            "customerId": customer_id,
            "instanceId": f"node-{n % 5}",
            "timestamp": f"2025-10-21T10:{n // 60:02d}:{n % 60:02d}Z",
            "metrics": {"activeDevices": n % 5, "totalDevices": 5},
        }

    requests = [(good_token, body(good_id, n)) for n in range(120)]
    requests += [(good_token, body(good_id, n)) for n in range(0, 120, 10)]  # resends
    requests += [(revoked_token, body(revoked_id, n)) for n in range(10)]
    requests += [(good_token, body(revoked_id, n)) for n in range(5)]  # not its customer

    # A wide window, so grouping does not depend on how busy this machine is.
    env = {"RATE_LIMIT_USAGE_PER_INSTANCE": "100000", "INGRESS_BATCH_MAX_WAIT_MS": "50"}
    with api_server(env=env) as url:
        responses = asyncio.run(_send_all(url, requests))

    statuses = [response.status_code for response in responses]
    assert statuses[:132] == [202] * 132
    assert statuses[132:142] == [401] * 10
    assert statuses[142:] == [403] * 5
    assert len({response.json()["reportId"] for response in responses[:120]}) == 120
    # All requests are in flight at once: of a report and its resend, either may be stored
    # first; the other gets the same id, marked duplicate.
    for original, resent in zip(responses[0:120:10], responses[120:132], strict=True):
        answers = original.json(), resent.json()
        assert answers[0]["reportId"] == answers[1]["reportId"]
        assert sorted(answer.get("duplicate", False) for answer in answers) == [False, True]

    assert pg_scalar("SELECT count(*) FROM usage_reports") == 120
    # Rows written by one transaction share its id (xmin): concurrent reports were grouped.
    # (Read before any worker runs, whose processing rewrites the rows.)
    transactions = pg_scalar("SELECT count(DISTINCT xmin::text) FROM usage_reports")
    assert transactions <= 20

    request.getfixturevalue("celery_worker")
    wait_until(
        lambda: pg_scalar("SELECT count(*) FROM usage_reports WHERE processed_at IS NULL") == 0,
        timeout=30,
    )
    assert pg_scalar("SELECT max(attempts) FROM usage_reports") == 1
