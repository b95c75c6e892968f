"""Billing issues (`/console/billing-issues`): double subscriptions and disputes, open and lately
resolved; "Resolve" closes one with a note (the same service as `billing stripe resolve-issue`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.console.auth import ChangingUser, SignedInUser
from api.console.rendering import PAGE_HEADERS, render
from api.deps import DbSession
from core.billing import issues

router = APIRouter(prefix="/console", include_in_schema=False)
ISSUES_PATH = "/console/billing-issues"


@router.get("/billing-issues")
def billing_issues_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    resolved: Annotated[bool, Query()] = False,
) -> Response:
    return render(
        request,
        "billing_issues.html",
        {
            "issues": issues.recent_issues(session, resolved=resolved, limit=50),
            "resolved": resolved,
        },
        user=user,
    )


@router.post("/billing-issues/{issue_id}/resolve")
def resolve(
    issue_id: int,
    session: DbSession,
    _: ChangingUser,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    issues.resolve_issue(session, issue_id, note)
    return RedirectResponse(f"{ISSUES_PATH}?resolved=true", status_code=303, headers=PAGE_HEADERS)
