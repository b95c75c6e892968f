"""The audit log over the API: who changed what (admin, any role)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import AdminKey, DbSession
from api.schemas import ID_PATTERN, CamelModel, error_responses
from core import audit

router = APIRouter(
    prefix="/api/audit", tags=["audit"], responses=error_responses(401, 422, 429, 503)
)


class AuditEntryOut(CamelModel):
    id: int
    created_at: datetime
    actor: str
    action: str
    customer_id: str | None
    reason: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPageOut(CamelModel):
    entries: list[AuditEntryOut]
    # Pass as beforeId for the next (older) page; None when this one is the last.
    next_before_id: int | None


@router.get("", summary="Audit entries, newest first: who changed what, from which door (admin)")
def list_audit(
    _: AdminKey,
    session: DbSession,
    customer_id: Annotated[
        str | None, Query(alias="customerId", min_length=1, max_length=64, pattern=ID_PATTERN)
    ] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(alias="beforeId", ge=1, le=2_147_483_647)] = None,
) -> AuditPageOut:
    wanted = audit.AuditFilter(customer_id=customer_id, actor=actor, since=since)
    entries = audit.list_entries(session, wanted, limit=limit, before_id=before_id)
    return AuditPageOut(
        entries=[AuditEntryOut.model_validate(entry) for entry in entries],
        next_before_id=entries[-1].id if len(entries) == limit else None,
    )
