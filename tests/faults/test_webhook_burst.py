"""A burst of 1,000 webhook deliveries with duplicates in shuffled order: the final state is as
if each distinct event had been handled once, in order, and each license was reissued once per
real change."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.billing.sync import plan_for_price
from tests.faults.figures import record
from tests.faults.harness import RedisServer, service_env, services, wait_for_workers
from tests.faults.scenarios import cancel_now_in_stripe, count_events, deliver_webhook
from tests.helpers.waiting import wait_until
from tests.stripe_fixtures import (
    cancel_at_period_end_in_stripe,
    change_plan_in_stripe,
    license_count,
    local_subscription_state,
    new_customer,
    start_checkout,
    stripe_subscription,
)

pytestmark = pytest.mark.faults

CUSTOMERS = 20
DELIVERIES = 1000
SENDERS = 8
# Deliveries per phase (checkouts, plan changes, cancellations): 1,000 in all.
QUOTAS = (500, 300, 200)
HANDLED = ("processed", "ignored")


def phases(stand_in: Any, customers: list[str]) -> list[Any]:
    """Each phase changes Stripe for some customers and returns their events, undelivered.

    Licenses change with: the paid checkout (all), the upgrade (first half), cancelling at
    period end (second half: the license loses its grace) and cancelling now (every other
    quarter).
    """
    half = CUSTOMERS // 2
    return [
        lambda: [e for c in customers for e in start_checkout(stand_in, c)],
        lambda: (
            [
                e
                for c in customers[:half]
                for e in change_plan_in_stripe(stand_in, c, "professional")
            ]
            + [e for c in customers[half:] for e in cancel_at_period_end_in_stripe(stand_in, c)]
        ),
        lambda: [
            e
            for c in customers[: half // 2] + customers[half : half + half // 2]
            for e in cancel_now_in_stripe(stand_in, c)
        ],
    ]


def expected_reissues(index: int) -> int:
    half = CUSTOMERS // 2
    upgraded = index < half
    canceled_now = index < half // 2 or half <= index < half + half // 2
    # Set to cancel at period end (second half): the license then says so, with no grace.
    set_to_cancel = index >= half
    return 1 + int(upgraded) + int(canceled_now) + int(set_to_cancel)


def deliveries(events: list[Any], quota: int, rng: random.Random) -> list[Any]:
    """Each event at least once, duplicates of random ones up to `quota`, shuffled."""
    assert quota >= len(events)
    batch = list(events) + rng.choices(events, k=quota - len(events))
    rng.shuffle(batch)
    return batch


def deliver_burst(api_url: str, batch: list[Any], figures: Any) -> None:
    def one(event: Any) -> int:
        with httpx.Client(timeout=30) as http:
            return deliver_webhook(http, api_url, event)[0]

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        statuses = list(pool.map(one, batch))
    for status in statuses:
        figures.count(status)
    assert Counter(statuses) == {200: len(batch)}


def stripe_state(stand_in: Any, customer_id: str) -> dict[str, Any]:
    """What handling every event once in order gives: each handler applies Stripe's state."""
    sub = stripe_subscription(stand_in, customer_id)
    plan = plan_for_price(sub["items"]["data"][0]["price"])
    assert plan is not None
    return {
        "plan": plan.value,
        "status": sub["status"],
        "cancel_at_period_end": bool(sub["cancel_at_period_end"]),
        "license_plan": plan.value,
        "license_status": sub["status"],
    }


def test_a_burst_of_duplicated_shuffled_webhooks_ends_as_if_each_was_handled_once(
    stand_in: Any, tmp_path: Path
) -> None:
    figures = record("1,000 webhook deliveries burst")
    rng = random.Random(20251021)
    customers = [new_customer(email=f"burst{n}@example.com") for n in range(CUSTOMERS)]
    all_ids: set[str] = set()
    counts: list[list[int]] = [[license_count(c)] for c in customers]
    started = time.monotonic()

    with RedisServer(tmp_path) as redis:
        env = service_env(redis.url)
        with services(env, tmp_path) as running:
            api_url = running.api()
            running.worker("worker-1")
            running.worker("worker-2")
            wait_for_workers(running, ["worker-1", "worker-2"])
            for step, quota in zip(phases(stand_in, customers), QUOTAS, strict=True):
                # The changes happen in Stripe, then their deliveries arrive in a burst.
                events = step()
                ids = {event["id"] for event in events}
                all_ids |= ids
                deliver_burst(api_url, deliveries(events, quota, rng), figures)
                figures.faults.append(
                    f"{quota} deliveries of {len(ids)} events, duplicated and shuffled, "
                    f"{SENDERS} senders at once"
                )
                wait_until(lambda ids=ids: count_events(ids, HANDLED) == len(ids), timeout=120)
                for index, customer_id in enumerate(customers):
                    counts[index].append(license_count(customer_id))
    elapsed = time.monotonic() - started

    assert figures.sent == DELIVERIES
    # Each distinct event stored once and handled once, whatever its number of deliveries.
    assert count_events(all_ids) == len(all_ids)
    assert count_events(all_ids, HANDLED) == len(all_ids)
    for index, customer_id in enumerate(customers):
        expected = stripe_state(stand_in, customer_id)
        state = local_subscription_state(customer_id)
        assert {key: state[key] for key in expected} == expected, customer_id
        # The trial license, then one per change of what the license says.
        assert counts[index][-1] == 1 + expected_reissues(index), (customer_id, counts[index])
    figures.stored = count_events(all_ids)
    figures.processed = count_events(all_ids, HANDLED)
    figures.notes.update(
        {
            "deliveries / distinct events / duplicates": (
                f"{DELIVERIES} / {len(all_ids)} / {DELIVERIES - len(all_ids)}"
            ),
            "customers / phases": f"{CUSTOMERS} / {len(QUOTAS)}",
            "final states equal to Stripe's (in-order model)": f"{CUSTOMERS}/{CUSTOMERS}",
            "licenses issued beyond the trial": sum(c[-1] - 1 for c in counts),
            "seconds for the whole burst": round(elapsed, 1),
        }
    )
