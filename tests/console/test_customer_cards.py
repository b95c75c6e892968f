"""What the customer page's cards and the revoke impact say: the license as the license says it,
when a past_due customer's access ends, and when a silent instance stops."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from core.customers.service import create_customer
from core.db import session_scope
from core.plans import get_plan
from core.settings import get_settings
from models import Subscription, utcnow
from tests.console.conftest import ORIGIN, seed_customer
from tests.console.operations_data import past_due_customer


def _revoke(client, csrf: str, customer_id: str) -> None:  # type: ignore[no-untyped-def]
    client.post(
        f"/console/customers/{customer_id}/revoke",
        data={"csrf_token": csrf, "reason": "fraud", "confirm": customer_id},
        headers={"Origin": ORIGIN},
    )


def _license_card(page: str) -> str:
    return page[page.index("<h2>License</h2>") :].split("</section>")[0]


def test_the_license_card_says_what_the_license_says(operator) -> None:
    client, csrf = operator
    with session_scope() as session:
        customer_id = create_customer(session, email="t@trial.example").customer_id
        # The subscription moved on; the license (a trial's) was not reissued yet.
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(plan="professional", status="active")
        )
    card = _license_card(client.get(f"/console/customers/{customer_id}").text)
    trial_devices = get_plan("trial").features.max_devices
    assert f"<strong>trial</strong> · {trial_devices:,} devices" in card
    assert "hard (refused above)" in card and "soft (overage billed)" not in card
    assert 'id="license-plan-differs">says professional' in card

    seeded = seed_customer()
    _revoke(client, csrf, seeded.customer_id)
    card = _license_card(client.get(f"/console/customers/{seeded.customer_id}").text)
    assert 'id="license-revoked">revoked</span>' in card


def test_a_past_due_customer_page_says_when_access_ends(operator) -> None:
    client, _ = operator
    customer_id = past_due_customer()
    with session_scope() as session:  # a renewal that failed (a trial's first charge has no grace)
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(trial_ends_at=utcnow() - timedelta(days=60))
        )
    page = client.get(f"/console/customers/{customer_id}").text
    # Paid through two days ago, plus the 7 days of past-due grace.
    ends = (utcnow() - timedelta(days=2) + timedelta(days=7)).strftime("%-d %b %Y")
    assert "Payment failed: Stripe is retrying. Access ends <span" in page
    assert f">{ends}</span>" in page and "unless paid" in page
    assert f'<dt>Access ends</dt><dd class="warn">{ends}</dd>' in page


def test_revoke_impact_of_a_silent_instance_is_its_latest_stop(operator) -> None:
    client, _ = operator
    seeded = seed_customer()
    page = client.get(f"/console/customers/{seeded.customer_id}/revoke").text
    munich = page[page.index("edge-munich") :].split("</tr>")[0]
    assert "silent since" in munich and "at its next check-in" not in munich
    assert "stops at the latest" in munich
    berlin = page[page.index("edge-berlin") :].split("</tr>")[0]
    assert "at its next check-in" in berlin


def test_no_inline_styles_the_csp_would_refuse(operator) -> None:
    """The CSP allows no inline style: the reinstate form's width comes from the stylesheet."""
    client, csrf = operator
    seeded = seed_customer()
    _revoke(client, csrf, seeded.customer_id)
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    assert 'id="reinstate-reason" class="reason-inline"' in page
    assert " style=" not in page
    css = client.get("/console/static/console.css").text
    assert "input.reason-inline { width: 280px" in css and ".cards > * { min-width: 0; }" in css


def test_a_revoked_customer_is_not_offered_a_reissue_and_an_empty_chart_says_so(
    operator,
) -> None:
    client, csrf = operator
    seeded = seed_customer()
    _revoke(client, csrf, seeded.customer_id)
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    assert ">Reissue license</button>" not in page and ">Reinstate license</button>" in page
    with session_scope() as session:
        fresh = create_customer(session, email="new@empty.example").customer_id
    page = client.get(f"/console/customers/{fresh}").text
    assert 'id="no-usage">No usage yet' in page and '<svg class="chart"' not in page


def test_signing_in_from_the_form_lands_on_the_overview(console_client) -> None:
    from tests.console.conftest import new_key

    answer = console_client.post(
        "/console/login",
        data={"api_key": new_key("alice@ops")},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"


def test_stripe_ids_link_to_the_dashboard_in_the_keys_mode_and_copy_whole(
    operator, monkeypatch
) -> None:
    from api.console.rendering import short, stripe_link

    client, _ = operator
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_walk")
    get_settings.cache_clear()
    try:
        seeded = seed_customer()
        page = client.get(f"/console/customers/{seeded.customer_id}").text
        assert (
            f'href="https://dashboard.stripe.com/test/customers/{seeded.stripe_customer_id}"'
            in page
        )
        assert 'href="https://dashboard.stripe.com/test/disputes/dp_1Walk"' in str(
            stripe_link("dp_1Walk")
        )
    finally:
        get_settings.cache_clear()
    # The page holds the whole id (the stylesheet cuts it), so a copy takes all of it.
    cut = str(short("cust_vza40mm56gvkagww", 12))
    assert ">cust_vza40mm56gvkagww</span>" in cut and 'class="cut cut-12"' in cut
