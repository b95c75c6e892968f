"""Authenticating a customer instance by the license it presents.

A license authenticates an instance when its RS256 signature verifies with a published key, this
service issued it (its jti is in `licenses`, for the customer it names) and it is not revoked.
Expired licenses are refused unless the caller allows them: check-in does, so an instance whose
trial lapsed can still pick up the license issued after the customer paid; usage reports do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import AuthenticationError
from core.license_tokens import InvalidLicenseError, verify_license
from core.licenses import public_keys
from core.settings import get_settings
from models import Customer, License


@dataclass(frozen=True, slots=True)
class InstanceIdentity:
    customer_id: str
    jti: str
    claims: dict[str, Any]


def authenticate_instance(
    session: Session, token: str | None, *, allow_expired: bool = False
) -> InstanceIdentity:
    if not token or not token.strip():
        raise AuthenticationError(
            "missing license: send it as `Authorization: Bearer <license JWT>`"
        )
    try:
        claims = verify_license(
            token.strip(),
            public_keys(),
            issuer=get_settings().license_issuer,
            verify_exp=not allow_expired,
        )
    except InvalidLicenseError as exc:
        raise AuthenticationError(f"invalid license: {exc.reason}") from None
    jti, subject = claims.get("jti"), claims.get("sub")
    if not isinstance(jti, str) or not isinstance(subject, str):
        raise AuthenticationError("invalid license: it lacks a jti or sub claim")
    # One round trip on the ingress hot path: the license row and its customer's revocation.
    found = session.execute(
        select(License.customer_id, License.revoked_at, Customer.license_revoked_at)
        .join(Customer, Customer.customer_id == License.customer_id)
        .where(License.jti == jti)
    ).first()
    # A genuine signature over an unknown jti means a key leaked or a token was forged with it:
    # only licenses recorded here are accepted.
    if found is None or found.customer_id != subject:
        raise AuthenticationError("invalid license: it was not issued by this service")
    # While a customer is revoked every license of theirs is refused, the one that says
    # "revoked" included: it exists so the audit trail and offline checks say so, not to be used.
    if found.revoked_at is not None or found.license_revoked_at is not None:
        raise AuthenticationError("license has been revoked; ask your provider for a new one")
    return InstanceIdentity(customer_id=subject, jti=jti, claims=claims)
