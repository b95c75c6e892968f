"""The license service: what a customer's license says, issuing, reissuing and renewing it.

Every issued license is a row in `licenses` (the audit trail); the current one has
`superseded_at` NULL, so reads return the stored token and never re-sign. A new license is signed
only when what it would say (its content fingerprint) or the signing key (kid) changed, when the
caller forces it, or when renewal would push its expiry later. Issuing for one customer is
serialised by the customer lock (`customers.lock.get_for_update`), so two workers never both
issue the same change. Revocation is in `revocation.py`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.billing import entitlements, statuses
from core.billing.repository import get_subscription
from core.billing.statuses import SubscriptionStatus
from core.customers.lock import get_for_update
from core.errors import NotFoundError
from core.licensing.keys import SigningKey, signing_key
from core.licensing.read_cache import mark_changed
from core.licensing.tokens import (
    IssuedLicense,
    LicenseContent,
    content_fingerprint,
    issue_license,
    license_expiry,
)
from core.plans import get_plan, plan_for_features
from core.settings import get_settings
from models import Customer, License, Subscription, utcnow

log = logging.getLogger(__name__)


def customer_display_name(customer: Customer) -> str:
    return customer.company_name or customer.name or customer.email


def license_content(customer: Customer, subscription: Subscription | None) -> LicenseContent:
    """What the customer's license says, from its customer row and subscription."""
    revoked = customer.license_revoked_at is not None
    if subscription is None:
        # No subscription at all gives no right to run: an expired trial of the trial tier.
        spec, status, trial_ends, period_ends = (
            get_plan("trial"),
            SubscriptionStatus.EXPIRED,
            None,
            None,
        )
    else:
        spec = get_plan(subscription.plan)
        # What was paid for, not merely billed: billing's entitlement rules (past_due, paused).
        status = entitlements.license_status(subscription)
        trial_ends = subscription.trial_ends_at
        period_ends = entitlements.paid_until(subscription)
    try:
        features, limits = plan_for_features(spec, customer.plan_overrides)
    except ValueError as exc:
        # A bad stored override must not stop every license of the customer; the plan's own
        # values are the safe reading, and the operator learns about it from the log.
        log.error("ignoring invalid plan overrides of %s: %s", customer.customer_id, exc)
        features, limits = spec.features, spec.limits
    is_trial = status in statuses.TRIAL  # an expired trial still is a trial
    return LicenseContent(
        customer_id=customer.customer_id,
        customer_name=customer_display_name(customer),
        plan=spec.plan,
        features=features,
        limits=limits,
        is_trial=is_trial,
        # Only a trial's end is said; a stale trial date on a paid plan must not cause reissues.
        trial_ends_at=trial_ends if is_trial else None,
        subscription_status=status,
        current_period_ends_at=period_ends,
        revoked=revoked,
        revoked_reason=customer.license_revoked_reason if revoked else None,
        ends_with_period=subscription is not None and entitlements.ends_with_period(subscription),
    )


def current_license(session: Session, customer_id: str) -> License | None:
    # All of the customer's unsuperseded licenses (one, normally), newest picked here: with
    # ORDER BY id LIMIT 1 PostgreSQL walks the primary key backwards past every newer license
    # of other customers (10 ms at 10,000 customers) instead of ix_licenses_customer_current.
    current = session.scalars(
        select(License).where(License.customer_id == customer_id, License.superseded_at.is_(None))
    ).all()
    return max(current, key=lambda row: row.id, default=None)


def _store(
    session: Session, issued: IssuedLicense, content: LicenseContent, current: License | None
) -> License:
    if current is not None:
        current.superseded_at = issued.issued_at
    # A license issued while the customer is revoked says so, and is itself revoked: it never
    # authenticates, not even after a reinstatement.
    revoked_at = issued.issued_at if content.revoked else None
    # Stored as issued: token, claims, jti, kid, fingerprint and times.
    row = License(
        **{f.name: getattr(issued, f.name) for f in dataclasses.fields(issued)},
        customer_id=content.customer_id,
        plan=content.plan.value,
        revoked_at=revoked_at,
        revoked_reason=(content.revoked_reason or "revoked") if content.revoked else None,
    )
    session.add(row)
    session.flush()
    # Check-ins and admin reads in every API process drop what they cached once this commits.
    mark_changed(session)
    return row


def _sign(
    content: LicenseContent, key: SigningKey, now: datetime, grace_days: int
) -> IssuedLicense:
    settings = get_settings()
    return issue_license(
        content,
        key,
        now=now,
        issuer=settings.license_issuer,
        grace_days=grace_days,
        max_days=settings.license_max_days,
    )


@dataclass(frozen=True)
class _Prepared:
    customer: Customer
    content: LicenseContent
    key: SigningKey
    current: License | None
    # Billing's grace for the subscription (`entitlements.grace_days`): not said in the license.
    grace_days: int

    @property
    def unchanged(self) -> bool:
        return (
            self.current is not None
            and self.current.fingerprint == content_fingerprint(self.content)
            and self.current.kid == self.key.kid
        )


def _prepare(session: Session, customer_id: str) -> _Prepared:
    customer = get_for_update(session, customer_id)
    subscription = get_subscription(session, customer_id)
    content = license_content(customer, subscription)
    current = current_license(session, customer_id)
    grace = entitlements.grace_days(subscription)
    return _Prepared(customer, content, signing_key(), current, grace)


def reissue_license(
    session: Session, customer_id: str, *, reason: str, force: bool = False
) -> License | None:
    """Issue a new current license when what it says or the signing key changed; else None.

    The caller commits. `force` issues even when nothing changed (an explicit operator request).
    """
    prepared = _prepare(session, customer_id)
    if prepared.unchanged and not force:
        return None
    issued = _sign(prepared.content, prepared.key, utcnow(), prepared.grace_days)
    row = _store(session, issued, prepared.content, prepared.current)
    log.info("issued license %s for %s (%s)", row.jti, customer_id, reason)
    return row


def ensure_license(session: Session, customer_id: str) -> License:
    """The current license, issuing one first if the customer has none (or it is out of date).

    Checked without a lock first: a read that finds the license up to date (nearly every one)
    neither signs nor takes the customer's row lock.
    """
    current = current_license(session, customer_id)
    if current is not None:
        customer = session.scalar(select(Customer).where(Customer.customer_id == customer_id))
        if customer is not None:
            content = license_content(customer, get_subscription(session, customer_id))
            if (
                current.fingerprint == content_fingerprint(content)
                and current.kid == signing_key().kid
            ):
                return current
    return reissue_license(session, customer_id, reason="requested") or required_current_license(
        session, customer_id
    )


def license_to_serve(session: Session, customer_id: str) -> License:
    """The current license for a read (check-in, admin read), issuing only if there is none or a
    retired key signed it.

    A read never recomputes what the license says: every change to that (plan, status, trial or
    period end, revocation) reissues when it is made, in the same transaction or by the worker it
    enqueues. The kid is compared because a rotation (`billing keys rotate`) changes no row.
    """
    current = current_license(session, customer_id)
    if current is not None and current.kid == signing_key().kid:
        return current
    return reissue_license(session, customer_id, reason="requested") or required_current_license(
        session, customer_id
    )


def required_current_license(session: Session, customer_id: str) -> License:
    row = current_license(session, customer_id)
    if row is None:  # pragma: no cover - reissue_license always leaves one
        raise NotFoundError(f"customer {customer_id} has no license", field="customerId")
    return row


def renew_license(session: Session, customer_id: str, *, reason: str = "renewal") -> License | None:
    """Reissue when the content or key changed, or when a new license would end later.

    Renewal of a license whose expiry is fixed (a trial ends with the trial; a paid period not yet
    extended by Stripe) would only sign the same expiry again, so it issues nothing then; nor
    does it sign a license that would be expired as it is issued (a trial that ended while its
    row still says trialing), which renewal would otherwise do again every hour.
    """
    prepared = _prepare(session, customer_id)
    now = utcnow()
    if prepared.unchanged:
        # Whole seconds, as issue_license stores them, or every trial would look renewable.
        would_expire = _renewal_expiry(prepared.content, prepared.grace_days, now)
        assert prepared.current is not None
        if would_expire <= prepared.current.expires_at or would_expire <= now:
            return None
    issued = _sign(prepared.content, prepared.key, now, prepared.grace_days)
    row = _store(session, issued, prepared.content, prepared.current)
    log.info("renewed license %s for %s (%s)", row.jti, customer_id, reason)
    return row


def _renewal_expiry(content: LicenseContent, grace_days: int, now: datetime) -> datetime:
    """The expiry a license renewed at `now` gets, at whole seconds as stored."""
    expires = license_expiry(
        content,
        now.replace(microsecond=0),
        grace_days=grace_days,
        max_days=get_settings().license_max_days,
    )
    return expires.replace(microsecond=0)


def customers_to_renew(
    session: Session, *, now: datetime | None = None, limit: int = 500
) -> list[str]:
    """Customers whose current license `renew_license` would re-sign now: a live subscription's
    license expiring within LICENSE_RENEW_WITHIN_DAYS that renewal would give a later expiry, or
    any license signed by a key that is no longer the active one.

    Only those: ones renewal skips every time (a trial's fixed end, a past_due license already
    ending with what was paid, a revoked or paused customer, a trial that has ended) must not
    take the places of the rest. Whether renewal extends a license is decided by the same rules
    that sign it (`license_content`, `entitlements.grace_days`, `tokens.license_expiry`), read
    from the rows in expiry order and walked past until `limit` are found, so the entitlement
    rule is written once. A license whose content changed is reissued by that change, not here.
    """
    now = now or utcnow()
    horizon = now + timedelta(days=get_settings().license_renew_within_days)
    active_kid = signing_key().kid
    query = (
        select(License.kid, License.expires_at, Customer, Subscription)
        .join(Customer, Customer.customer_id == License.customer_id)
        .join(Subscription, Subscription.customer_id == License.customer_id, isouter=True)
        .where(License.superseded_at.is_(None))
        .where(
            or_(
                License.kid != active_kid,
                (License.expires_at <= horizon) & Subscription.status.in_(statuses.LIVE),
            )
        )
        .order_by(License.expires_at, License.id)
        .execution_options(yield_per=500)
    )
    found: dict[str, None] = {}
    for kid, expires_at, customer, subscription in session.execute(query):
        if kid == active_kid:
            content = license_content(customer, subscription)
            if content.has_ended:
                continue
            renewed = _renewal_expiry(content, entitlements.grace_days(subscription), now)
            if renewed <= expires_at or renewed <= now:
                continue
        found[customer.customer_id] = None
        if len(found) >= limit:
            break
    return list(found)
