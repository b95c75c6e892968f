"""One customer's page, and the actions on it. Each action is a POST that runs the same service
function as the API and the CLI, then sends the browser back to the page (post/redirect/get);
a refused action changes nothing (its transaction rolls back) and shows why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.console.auth import ChangingUser, SignedInUser
from api.console.invoice_preview import panel_context
from api.console.rendering import PAGE_HEADERS, render
from api.deps import DbSession
from api.schemas import ID_PATTERN
from core import audit
from core.billing import changes
from core.billing.gateway import get_gateway
from core.console import timeline
from core.console.customer_view import cancel_impact, customer_view, revocation_impact
from core.console.sessions import ConsoleUser
from core.db import session_scope
from core.errors import DomainError, InvalidInputError
from core.licensing.revocation import MAX_REASON, reinstate_license, reissue_now, revoke_license
from core.settings import get_settings

router = APIRouter(prefix="/console/customers", include_in_schema=False)

CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
Reason = Annotated[str, Form(max_length=MAX_REASON)]
# The notice a finished action leaves on the page (?done=...).
NOTICES = {
    "revoked": "License revoked. Its instances stop at their next check-in.",
    "reinstated": "Revocation lifted: a normal license was issued.",
    "reissued": "A new license was issued.",
    "canceled": "The subscription is set to cancel at the end of its paid period.",
}


def _back(customer_id: str, done: str) -> Response:
    return RedirectResponse(
        f"/console/customers/{customer_id}?done={done}", status_code=303, headers=PAGE_HEADERS
    )


def _required_reason(reason: str) -> str:
    if not reason.strip():
        raise InvalidInputError("reason is required: say why, for the audit log", field="reason")
    return reason


def _customer_page(
    request: Request,
    session: Session,
    user: ConsoleUser,
    customer_id: str,
    *,
    show: str = "all",
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    view = customer_view(session, customer_id)
    show = show if show in timeline.FILTERS else "all"
    return render(
        request,
        "customer.html",
        {
            "view": view,
            "timeline": timeline.shown(view.timeline, show),
            "show": show,
            "filters": list(timeline.FILTERS),
            "notice": notice,
            "action_error": error,
            # Our estimate drawn now, Stripe's preview if one is kept (htmx asks for it else).
            **panel_context(session, customer_id, cached_only=True, overage=view.overage),
        },
        user=user,
        block="timeline",
        status_code=status_code,
    )


def _stripe_refused(
    request: Request, session: Session, user: ConsoleUser, customer_id: str, exc: DomainError
) -> Response:
    """A Stripe action Stripe (or its missing configuration) refused: nothing changed; the
    customer's own page says why, with the navigation, rather than a bare error page."""
    session.rollback()
    return _customer_page(
        request, session, user, customer_id, error=exc.message, status_code=exc.status_code
    )


@router.get("/{customer_id}")
def customer_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    customer_id: CustomerId,
    show: str = "all",
    done: str | None = None,
) -> Response:
    notice = NOTICES.get(done or "")
    return _customer_page(request, session, user, customer_id, show=show, notice=notice)


@router.get("/{customer_id}/revoke")
def revoke_form(
    request: Request, session: DbSession, user: SignedInUser, customer_id: CustomerId
) -> Response:
    impact = revocation_impact(session, customer_id)
    return render(request, "revoke.html", {"impact": impact, "error": None}, user=user)


@router.post("/{customer_id}/revoke")
def revoke(
    request: Request,
    session: DbSession,
    user: ChangingUser,
    customer_id: CustomerId,
    reason: Reason = "",
    confirm: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    error = None
    if not reason.strip():
        error = "Give a reason: it is kept in the audit log and put in the license."
    elif confirm.strip() != customer_id:
        error = "Type the customer id exactly to confirm."
    if error is not None:
        impact = revocation_impact(session, customer_id)
        context = {"impact": impact, "error": error, "reason": reason, "confirm": confirm}
        return render(request, "revoke.html", context, user=user, status_code=422)
    revoke_license(session, customer_id, reason=reason)
    return _back(customer_id, "revoked")


@router.post("/{customer_id}/reinstate")
def reinstate(
    session: DbSession, _: ChangingUser, customer_id: CustomerId, reason: Reason = ""
) -> Response:
    reinstate_license(session, customer_id, reason=_required_reason(reason))
    return _back(customer_id, "reinstated")


@router.post("/{customer_id}/reissue")
def reissue(
    session: DbSession, _: ChangingUser, customer_id: CustomerId, reason: Reason = ""
) -> Response:
    reissue_now(session, customer_id, reason=reason or None)
    return _back(customer_id, "reissued")


@router.get("/{customer_id}/cancel")
def cancel_form(
    request: Request, session: DbSession, user: SignedInUser, customer_id: CustomerId
) -> Response:
    impact = cancel_impact(session, customer_id)
    return render(request, "cancel.html", {"impact": impact, "error": None}, user=user)


@router.post("/{customer_id}/cancel")
def cancel_at_period_end(
    request: Request,
    session: DbSession,
    user: ChangingUser,
    customer_id: CustomerId,
    reason: Reason = "",
) -> Response:
    if not reason.strip():
        impact = cancel_impact(session, customer_id)
        error = "Give a reason: it is kept in the audit log."
        context = {"impact": impact, "error": error, "reason": reason}
        return render(request, "cancel.html", context, user=user, status_code=422)
    try:
        audit.give_reason(session, reason.strip())
        changes.cancel_subscription(session, get_gateway(), customer_id, transaction=session_scope)
    except DomainError as exc:
        if exc.status_code < 500:
            raise
        return _stripe_refused(request, session, user, customer_id, exc)
    return _back(customer_id, "canceled")


@router.post("/{customer_id}/portal")
def stripe_portal(
    request: Request, session: DbSession, user: ChangingUser, customer_id: CustomerId
) -> Response:
    """Opens the customer's Stripe portal (a session made for this click, so a POST)."""
    back = f"{get_settings().public_base_url.rstrip('/')}/console/customers/{customer_id}"
    try:
        url = changes.portal_url(session, get_gateway(), customer_id, back)
    except DomainError as exc:
        if exc.status_code < 500:
            raise
        return _stripe_refused(request, session, user, customer_id, exc)
    return RedirectResponse(url, status_code=303, headers=PAGE_HEADERS)
