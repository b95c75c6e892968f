"""One license's page (`/console/licenses/{jti}`), linked from the customer's timeline, its
license card and the Stripe event that issued it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.console.auth import SignedInUser
from api.console.rendering import render
from api.deps import DbSession
from api.schemas import ID_PATTERN
from core.console.license_view import license_view

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/licenses/{jti}")
def license_page(
    request: Request,
    session: DbSession,
    user: SignedInUser,
    jti: Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)],
) -> Response:
    return render(request, "license.html", {"view": license_view(session, jti)}, user=user)
