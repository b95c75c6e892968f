"""An operator's actions on a customer's licenses: revoking them, lifting the revocation, and
reissuing the current one. Each is audited in its own transaction (core/audit.py).

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

from core import audit
from core.customers.lock import get_for_update
from core.licensing.service import current_license, reissue_license, required_current_license
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
    newly_revoked = customer.license_revoked_at is None
    if newly_revoked:
        customer.license_revoked_at = now
        customer.license_revoked_reason = reason
    revoked_jtis = sorted(
        session.scalars(
            update(License)
            .where(License.customer_id == customer_id, License.revoked_at.is_(None))
            .values(
                revoked_at=now, revoked_reason=customer.license_revoked_reason or DEFAULT_REASON
            )
            .returning(License.jti)
        )
    )
    session.flush()
    reissue_license(session, customer_id, reason="revoked")
    current = required_current_license(session, customer_id)
    if newly_revoked:
        # The licenses revoked by name, and the one issued saying so (`audit.revocation_entry`
        # finds this entry again from a revoked license by `revoked_at`).
        audit.record(
            session,
            "license.revoke",
            customer_id=customer_id,
            reason=reason,
            before={"revoked_at": None},
            after={
                "revoked_at": now,
                "revoked_jtis": revoked_jtis,
                "says_revoked_jti": current.jti,
            },
        )
    return RevocationResult(customer=customer, license=current, revoked_licenses=len(revoked_jtis))


def reinstate_license(session: Session, customer_id: str, *, reason: str | None = None) -> License:
    """Lift a revocation: the customer's next license is a normal one again (licenses revoked
    earlier stay refused; the instance is given the new one by its operator). Idempotent."""
    reason = clean_text(reason, "reason", max_length=MAX_REASON, multi_line=True)
    customer = get_for_update(session, customer_id)
    revoked_at = customer.license_revoked_at
    if revoked_at is not None:
        customer.license_revoked_at = None
        customer.license_revoked_reason = None
        session.flush()
    reissue_license(session, customer_id, reason="reinstated")
    current = required_current_license(session, customer_id)
    if revoked_at is not None:
        audit.record(
            session,
            "license.reinstate",
            customer_id=customer_id,
            reason=reason,
            before={"revoked_at": revoked_at},
            after={"revoked_at": None, "jti": current.jti},
        )
    return current


def reissue_now(session: Session, customer_id: str, *, reason: str | None = None) -> License:
    """Issue the customer a new current license now, even when nothing it says changed (an
    instance lost its copy, or an operator wants a fresh expiry)."""
    reason = clean_text(reason, "reason", max_length=MAX_REASON, multi_line=True)
    previous = current_license(session, customer_id)
    row = reissue_license(session, customer_id, reason="reissued by an operator", force=True)
    assert row is not None  # force always issues
    audit.record(
        session,
        "license.reissue",
        customer_id=customer_id,
        reason=reason,
        before={"jti": previous.jti if previous else None},
        after={"jti": row.jti, "expires_at": row.expires_at},
    )
    return row
