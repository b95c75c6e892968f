"""The customer page's "Next invoice" panel: Stripe's preview beside our estimate.

The customer page includes `_next_invoice_slot.html`, which fetches this panel with htmx once the
page is shown, so a slow Stripe never holds the page up (without JavaScript, a link opens it).
The preview is cached per customer; "Refresh" asks Stripe again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.console.auth import SignedInUser
from api.console.rendering import render
from api.deps import DbSession
from core.billing.entitlements import ends_with_period
from core.billing.invoice_preview import next_invoice
from core.billing.repository import get_subscription

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/customers/{customer_id}/next-invoice")
def next_invoice_panel(
    request: Request,
    customer_id: str,
    session: DbSession,
    user: SignedInUser,
    refresh: Annotated[bool, Query()] = False,
) -> Response:
    preview = next_invoice(session, customer_id, refresh=refresh)
    row = get_subscription(session, customer_id)
    # Set to end with its period: no renewal invoice comes, whatever an estimate would say.
    canceling = row is not None and ends_with_period(row)
    return render(
        request,
        "next_invoice.html",
        {"preview": preview, "customer_id": customer_id, "canceling": canceling},
        user=user,
        block="panel",
    )
