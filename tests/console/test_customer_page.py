"""One customer's page: subscription, license, instances, the chart, overage and the timeline."""

from __future__ import annotations

import re
from datetime import timedelta

from core.billing.metering.estimate import period_start
from core.db import session_scope
from models import utcnow
from tests.console.conftest import seed_customer


def _expected_overage_device_days() -> int:
    """The seed's billable device-days this period, counted here by hand: per day, Berlin's
    devices plus Munich's (until two days ago), above the professional limit of 50."""
    now = utcnow()
    start = period_start(now + timedelta(days=20))
    total = 0
    for days_ago in range(30):
        day = (now - timedelta(days=days_ago, minutes=5)).date()
        if day < start:
            continue
        devices = (60 if days_ago < 3 else 25 + days_ago % 7) + (19 if days_ago >= 2 else 0)
        total += max(0, devices - 50)
    return total


def test_the_page_joins_subscription_license_usage_and_money(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    assert "Acme GmbH" in page and "ops@acme.example" in page
    assert (
        '<strong>professional</strong> · <span class="status status-active">active</span>' in page
    )
    assert seeded.jti in page and "soft (overage billed)" in page
    assert "+7 d offline grace" in page
    device_days = _expected_overage_device_days()
    assert f"<strong>{device_days:,}</strong> device-days over the 50-device limit" in page
    whole, cents = divmod(device_days * 7, 100)
    assert f"<strong>${whole:,}.{cents:02d}</strong> ($0.07 each)" in page


def test_the_chart_draws_30_days_against_the_limit(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    bars = re.findall(r'class="bar( over)?" data-day="([0-9-]+)" data-devices="(\d+)"', page)
    assert len(bars) == 30
    today = utcnow().date()
    assert bars[-1][1:] == (str(today), "60")  # Munich is silent since two days
    assert bars[-3][1:] == (str(today - timedelta(days=2)), "79")
    assert all(over == " over" for over, _, devices in bars if int(devices) > 50)
    assert 'data-limit="50"' in page


def test_instances_warn_of_silence_and_an_old_license(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    berlin = page[page.index("<code>edge-berlin</code>") :].split("</tr>")[0]
    munich = page[page.index("<code>edge-munich</code>") :].split("</tr>")[0]
    assert ">60<" in berlin and "current" in berlin and "silent" not in berlin
    assert "silent" in munich and "previous" in munich and ">19<" in munich
    assert page.index("edge-berlin") < page.index("edge-munich")  # latest report first


def test_the_timeline_joins_every_system_newest_first(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    timeline = page[page.index('id="timeline"') :]
    expected_in_order = [
        "alice@ops: license.reissue — “lost copy”",  # the seed's last step
        "plan changed: trial → professional",  # with the professional license
        "trial license issued",  # when the customer was created
        "10 device-days of",  # an hour ago
        "invoice.paid $99.00",  # a day ago
    ]
    positions = [timeline.index(text) for text in expected_in_order]
    assert positions == sorted(positions)
    # Usage days (at the start of their UTC day), today's first.
    assert timeline.index("peak 60 devices (limit 50)") < timeline.index("peak 79 devices")
    assert "processed" in timeline and "audit #" in timeline

    operators_only = client.get(
        f"/console/customers/{seeded.customer_id}",
        params={"show": "operators"},
        headers={"HX-Request": "true"},
    ).text
    assert "<html" not in operators_only
    assert "license.reissue" in operators_only and "invoice.paid" not in operators_only


def test_an_unknown_customer_is_a_404_page(operator) -> None:
    client, _ = operator
    answer = client.get("/console/customers/cust_missing")
    assert answer.status_code == 404
    assert "no customer" in answer.text and "<html" in answer.text


def test_the_timeline_draws_only_its_newest_entries() -> None:
    from core.console import timeline

    now = utcnow()
    items = [
        timeline.TimelineItem(now - timedelta(minutes=n), "operator", f"operator action {n}")
        for n in range(timeline.SHOWN + 50)
    ]
    assert timeline.shown(items, "all") == items[: timeline.SHOWN]
    assert timeline.shown(items, "operators") == items[: timeline.SHOWN]


def test_an_error_page_keeps_the_navigation_and_who_is_signed_in(operator) -> None:
    client, _ = operator
    answer = client.get("/console/customers/cust_nope")
    assert answer.status_code == 404 and "no customer" in answer.text
    assert 'href="/console/at-risk"' in answer.text and "alice@ops" in answer.text
    assert ">Sign out<" in answer.text
    meter = client.get("/console/meter-events", params={"state": "all"})
    assert meter.status_code == 200


def test_relative_times_round_to_the_nearest_unit() -> None:
    from api.console.rendering import _ago, _ahead

    day, hour = 86400, 3600
    assert _ahead(20 * day - 5) == "in 20 d"
    assert _ahead(4.9 * day) == "in 5 d"
    assert _ago(47 * hour) == "2 d ago"
    assert _ago(30 * hour) == "30 h ago"
    assert _ago(30) == "just now"


def test_system_entries_are_tagged_system_and_not_shown_as_operators(operator) -> None:
    from core import audit

    client, _ = operator
    seeded = seed_customer()
    with session_scope() as session:  # a task's change: no actor named
        audit.record(session, "subscription.sync", customer_id=seeded.customer_id, reason="beat")
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    row = page[page.index("system: subscription.sync") - 200 :].split("</tr>")[0]
    assert '<td class="kind kind-system">system</td>' in row and "kind-operator" not in row
    css = client.get("/console/static/console.css").text
    assert ".kind-system { color: var(--muted)" in css

    def shown(show: str) -> str:
        return client.get(
            f"/console/customers/{seeded.customer_id}",
            params={"show": show},
            headers={"HX-Request": "true"},
        ).text

    operators = shown("operators")
    assert "subscription.sync" not in operators and "alice@ops: license.reissue" in operators
    assert "subscription.sync" in shown("system") and "license.reissue" not in shown("system")
