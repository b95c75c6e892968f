"""Money at risk (`/console/at-risk`): failed payments with the amount due and since when,
subscriptions canceling at the period's end, open disputes, customers over their device limit,
trials ending without a payment method. Each row links to its customer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.console.auth import SignedInUser
from api.console.rendering import render
from api.deps import DbSession
from core.operations.at_risk import money_at_risk
from core.operations.overview import TRIAL_ENDING_DAYS

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/at-risk")
def at_risk_page(request: Request, session: DbSession, user: SignedInUser) -> Response:
    return render(
        request,
        "at_risk.html",
        {"risk": money_at_risk(session), "trial_days": TRIAL_ENDING_DAYS},
        user=user,
    )
