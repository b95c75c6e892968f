"""One license as an operator reads it (`/console/licenses/{jti}`): whose it is, what it says
(plan, features, limits), the key that signed it (kid, and whether that key still signs new
licenses), when it was issued and expires, and whether it is current, replaced or revoked. The
token itself is never shown: it is the customer's credential."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.errors import NotFoundError
from core.licensing.keys import active_kid
from core.settings import get_settings
from models import AuditEntry, Customer, License


@dataclass(frozen=True, slots=True)
class LicenseView:
    license: License
    customer: Customer
    # Whether the key that signed it signs new licenses now (else: a rotated-out key).
    signed_by_active_key: bool
    offline_grace_days: int
    # The audit entry of the revocation (who revoked it), when revoked.
    revoked_by: AuditEntry | None

    @property
    def state(self) -> str:
        if self.license.revoked_at is not None:
            return "revoked"
        return "replaced" if self.license.superseded_at is not None else "current"

    @property
    def features(self) -> dict[str, Any]:
        return dict(self.license.claims.get("features") or {})

    @property
    def limits(self) -> dict[str, Any]:
        return dict(self.license.claims.get("limits") or {})


def license_view(session: Session, jti: str) -> LicenseView:
    found = session.execute(
        select(License, Customer)
        .join(Customer, Customer.customer_id == License.customer_id)
        .where(License.jti == jti)
    ).first()
    if found is None:
        raise NotFoundError(f"no license {jti!r}", field="jti")
    row, customer = found
    return LicenseView(
        license=row,
        customer=customer,
        signed_by_active_key=row.kid == active_kid(),
        offline_grace_days=get_settings().sdk_offline_grace_days,
        revoked_by=audit.revocation_entry(session, row.customer_id, row.revoked_at)
        if row.revoked_at is not None
        else None,
    )
