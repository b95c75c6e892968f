"""Billing issues (`/console/billing-issues`): double subscriptions and disputes, open and lately
resolved; "Resolve" closes one with a note (the same service as `billing stripe resolve-issue`),
after asking when it is a dispute Stripe still has open."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.console.auth import ChangingUser, SignedInUser
from api.console.rendering import PAGE_HEADERS, render
from api.deps import DbSession
from core.billing import issues
from core.operations.billing_issues import default_sort, issue_sort, list_issues
from core.sorting import MAX_SORT

router = APIRouter(prefix="/console", include_in_schema=False)
ISSUES_PATH = "/console/billing-issues"


@router.get("/billing-issues")
def billing_issues_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    resolved: Annotated[bool, Query()] = False,
    sort: Annotated[str, Query(max_length=MAX_SORT)] = "",
) -> Response:
    order = issue_sort(sort, resolved)

    def sort_link(param: str) -> str:
        values = {"resolved": "true" if resolved else "", "sort": param}
        if param == default_sort(resolved):
            values["sort"] = ""
        return f"{ISSUES_PATH}?" + urlencode({k: v for k, v in values.items() if v})

    return render(
        request,
        "billing_issues.html",
        {
            "rows": list_issues(session, resolved=resolved, sort=order.param),
            "resolved": resolved,
            "sort": order,
            "sort_link": sort_link,
        },
        user=user,
    )


@router.post("/billing-issues/{issue_id}/resolve")
def resolve(
    request: Request,
    issue_id: int,
    session: DbSession,
    user: ChangingUser,
    note: Annotated[str, Form(max_length=2000)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    issues.resolution_note(note)
    issue = issues.get_issue(session, issue_id)
    if issue.resolved_at is None and issues.is_open_in_stripe(issue) and confirm != "yes":
        # Resolving here leaves Stripe's dispute open: say so and ask first.
        return render(
            request, "resolve_dispute.html", {"issue": issue, "note": note.strip()}, user=user
        )
    issues.resolve_issue(session, issue_id, note)
    return RedirectResponse(f"{ISSUES_PATH}?resolved=true", status_code=303, headers=PAGE_HEADERS)
