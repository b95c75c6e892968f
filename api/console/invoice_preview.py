"""The customer page's "Next invoice" panel: Stripe's preview beside our estimate.

The customer page draws the panel (`_next_invoice_panel.html`) with our estimate, and Stripe's
preview when one is kept (INVOICE_PREVIEW_CACHE_SECONDS), without asking Stripe: a slow Stripe
never holds the page up. Without a kept preview, htmx fetches the panel from here once the page
is shown, which asks Stripe (without JavaScript, a link opens it). "Refresh" asks Stripe again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.console.auth import SignedInUser
from api.console.rendering import render
from api.deps import DbSession
from core.billing.entitlements import ends_with_period
from core.billing.invoice_preview import next_invoice
from core.billing.metering.estimate import OverageEstimate
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
    return render(
        request,
        "next_invoice.html",
        panel_context(session, customer_id, refresh=refresh),
        user=user,
        block="panel",
    )


def panel_context(
    session: Session,
    customer_id: str,
    *,
    refresh: bool = False,
    cached_only: bool = False,
    overage: OverageEstimate | None = None,
) -> dict[str, object]:
    """What the panel shows: the next invoice (Stripe asked unless `cached_only`)."""
    row = get_subscription(session, customer_id)
    # Set to end with its period: no renewal invoice comes, whatever an estimate would say.
    canceling = row is not None and ends_with_period(row)
    preview = None
    if not canceling:
        preview = next_invoice(
            session, customer_id, refresh=refresh, cached_only=cached_only, overage=overage
        )
    return {"preview": preview, "customer_id": customer_id, "canceling": canceling}
