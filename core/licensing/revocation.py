"""Revoking a customer's licenses, and lifting the revocation.

Revocation lasts: every license the customer holds at that moment is marked revoked, expired ones
included (check-in accepts expired licenses, so an old, perhaps leaked one would otherwise collect
a fresh license after a reinstatement), and so is every license issued while the customer is
revoked (`service._store`). A license marked revoked is refused for good; reinstating only means
the customer's next license is a normal one.

Revocation runs in-process for the API and the CLI alike: the operator waits for the answer either
way, and the answer must not travel through the broker's result store (it names the new license).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.customers.lock import get_for_update
from core.licensing.service import reissue_license, required_current_license
from core.text import clean_text
from models import Customer, License, utcnow

MAX_REASON = 500  # customers.license_revoked_reason, licenses.revoked_reason
DEFAULT_REASON = "revoked"


@dataclass(frozen=True)
class RevocationResult:
    customer: Customer
    license: License
    revoked_licenses: int


def revoke_license(
    session: Session, customer_id: str, *, reason: str | None = None
) -> RevocationResult:
    """Revoke every license of the customer and issue one that says it is revoked.

    Idempotent: revoking again keeps the first revocation's time and reason, and marks nothing new.
    `revoked_licenses` counts the licenses this call marked (not the new one that says revoked).
    """
    reason = clean_text(reason, "reason", max_length=MAX_REASON, multi_line=True)
    customer = get_for_update(session, customer_id)
    now = utcnow()
    if customer.license_revoked_at is None:
        customer.license_revoked_at = now
        customer.license_revoked_reason = reason
    result = session.execute(
        update(License)
        .where(License.customer_id == customer_id, License.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=customer.license_revoked_reason or DEFAULT_REASON)
    )
    session.flush()
    reissue_license(session, customer_id, reason="revoked")
    return RevocationResult(
        customer=customer,
        license=required_current_license(session, customer_id),
        revoked_licenses=result.rowcount or 0,  # type: ignore[attr-defined]
    )


def reinstate_license(session: Session, customer_id: str) -> License:
    """Lift a revocation: the customer's next license is a normal one again (licenses revoked
    earlier stay refused; the instance is given the new one by its operator). Idempotent."""
    customer = get_for_update(session, customer_id)
    if customer.license_revoked_at is not None:
        customer.license_revoked_at = None
        customer.license_revoked_reason = None
        session.flush()
    reissue_license(session, customer_id, reason="reinstated")
    return required_current_license(session, customer_id)
