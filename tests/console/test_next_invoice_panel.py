"""The customer page's "Next invoice" panel: Stripe's lines beside our estimate, a disagreement
flagged, Stripe unreachable never an error page."""

from __future__ import annotations

from core.billing import invoice_preview
from core.db import session_scope
from core.usage.parsing import ReportInput
from models import utcnow
from tests.helpers.reports import store_report
from tests.stripe_fixtures import *  # noqa: F403
from tests.stripe_fixtures import handle_inline, new_customer, start_checkout


def _starter_over_its_limit(stand_in) -> str:  # type: ignore[no-untyped-def]
    invoice_preview.clear_cache()
    customer_id = new_customer()
    handle_inline(start_checkout(stand_in, customer_id, plan="starter"))
    with session_scope() as session:
        store_report(
            session, ReportInput(customer_id, "edge-1", 14, 14, utcnow()), license_jti=None
        )
    return customer_id


def _previews_asked(stand_in) -> int:  # type: ignore[no-untyped-def]
    return sum(r.path == "/v1/invoices/create_preview" for r in stand_in.requests)


def test_the_panel_shows_stripes_lines_and_flags_the_difference(stand_in, operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    customer_id = _starter_over_its_limit(stand_in)
    customer_page = client.get(f"/console/customers/{customer_id}").text
    assert f'hx-get="/console/customers/{customer_id}/next-invoice"' in customer_page

    panel = client.get(
        f"/console/customers/{customer_id}/next-invoice", headers={"HX-Request": "true"}
    )
    assert panel.status_code == 200 and "<html" not in panel.text
    assert "Stripe preview" in panel.text and "$29.00" in panel.text
    assert "$29.40" in panel.text  # ours: $29 + 4 device-days x 10 cents
    assert "differ by -$0.40" in panel.text
    assert "Stripe has 0 device-day(s), we count 4" in panel.text
    assert 'class="line-flat"' in panel.text and 'class="line-overage"' in panel.text


def test_stripe_down_shows_our_estimate_and_says_so(stand_in, operator) -> None:  # type: ignore[no-untyped-def]
    client, _ = operator
    customer_id = _starter_over_its_limit(stand_in)
    stand_in.set_down(True)
    page = client.get(f"/console/customers/{customer_id}/next-invoice")
    assert page.status_code == 200
    assert "preview unavailable" in page.text and "$29.40" in page.text
    assert "Stripe&#39;s preview is unavailable" in page.text


def test_no_invoice_for_a_canceling_subscription_and_nothing_asked_without_stripe(operator) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from models import Subscription
    from tests.console.conftest import seed_customer

    client, _ = operator
    seeded = seed_customer()
    # Stripe is not configured here: the panel must not claim it asked Stripe.
    panel = client.get(f"/console/customers/{seeded.customer_id}/next-invoice").text
    assert "Stripe is not configured" in panel and "Asked Stripe" not in panel
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    assert "Stripe is not configured" in page and "Asked Stripe" not in page
    assert "data-preview-pending" not in page and "data-our-total" in page

    with session_scope() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.customer_id == seeded.customer_id)
            .values(cancel_at_period_end=True)
        )
    page = client.get(f"/console/customers/{seeded.customer_id}").text
    assert "No invoice is coming: the subscription is set to cancel" in page
    panel = client.get(f"/console/customers/{seeded.customer_id}/next-invoice").text
    assert "No invoice is coming" in panel and "Our estimate" not in panel


def test_the_customer_page_shows_our_estimate_without_javascript(stand_in, operator) -> None:  # type: ignore[no-untyped-def]
    """Drawn with the page: our estimate at once; Stripe's preview when one is kept (5 minutes),
    else asked after the page (htmx) or by a link; Stripe down: our estimate, said unavailable."""
    client, _ = operator
    customer_id = _starter_over_its_limit(stand_in)
    first = client.get(f"/console/customers/{customer_id}").text
    card = first[first.index('id="next-invoice"') :].split("</section>")[0]
    assert "data-our-total>$29.40" in card  # $29 + 4 device-days x 10 cents, no Stripe asked
    assert "data-preview-pending" in card and "Ask Stripe" in card
    assert f'hx-get="/console/customers/{customer_id}/next-invoice" hx-trigger="load"' in first
    assert _previews_asked(stand_in) == 0

    client.get(f"/console/customers/{customer_id}/next-invoice")  # the htmx request
    kept = client.get(f"/console/customers/{customer_id}").text
    card = kept[kept.index('id="next-invoice"') :].split("</section>")[0]
    assert "data-stripe-total>$29.00" in card and "data-our-total>$29.40" in card
    assert "differ by -$0.40" in card and "data-preview-pending" not in card
    assert 'hx-trigger="load"' not in kept
    assert _previews_asked(stand_in) == 1  # the kept one

    invoice_preview.clear_cache()
    stand_in.set_down(True)
    client.get(f"/console/customers/{customer_id}/next-invoice")  # Stripe unreachable
    down = client.get(f"/console/customers/{customer_id}")
    card = down.text[down.text.index('id="next-invoice"') :].split("</section>")[0]
    assert down.status_code == 200
    assert "data-our-total>$29.40" in card and "preview unavailable" in card
