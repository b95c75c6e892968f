from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from api.deps import AdminKey, DbSession
from api.schemas import CamelModel, Page
from models import Customer

router = APIRouter(prefix="/api/customers", tags=["customers"])


class CustomerOut(CamelModel):
    customer_id: str
    email: str
    name: str | None
    company_name: str | None
    stripe_customer_id: str | None
    created_at: datetime


@router.get("", summary="List customers (admin)")
def list_customers(
    _: AdminKey,
    session: DbSession,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> Page[CustomerOut]:
    total = session.scalar(select(func.count()).select_from(Customer)) or 0
    rows = session.scalars(select(Customer).order_by(Customer.id).limit(limit).offset(offset))
    return Page[CustomerOut](
        items=[CustomerOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )
