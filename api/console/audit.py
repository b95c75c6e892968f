"""The audit page: who did what, newest first, filtered by customer and actor."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.console.auth import SignedInUser
from api.console.rendering import render
from api.deps import DbSession
from core import audit

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/audit")
def audit_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    customer: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=255)] = "",
    before: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> Response:
    wanted = audit.AuditFilter(customer_id=customer.strip() or None, actor=actor or None)
    page = audit.audit_page(session, wanted, before_id=before)
    older = (
        "/console/audit?"
        + urlencode(
            {k: v for k, v in {"customer": customer, "actor": actor}.items() if v}
            | {"before": page.next_before_id}
        )
        if page.next_before_id
        else None
    )
    return render(
        request,
        "audit.html",
        {"page": page, "customer": customer, "actor": actor, "older": older},
        user=user,
        block="entries",
    )
