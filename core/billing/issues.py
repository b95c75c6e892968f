"""Billing issues: what an operator must sort out, recorded instead of logged and forgotten.

- `conflict`: a second live Stripe subscription for a customer whose row follows another one
  (double billing). Resolved when it ends, or when the other ends and the row follows it.
- `dispute`: a charge the payer's bank disputes (`charge.dispute.*`). Shown, never acted on
  automatically: a dispute may be won. Resolved when Stripe closes it.
- `promotion`: a promotion code given with an upgrade that Stripe refused once the upgrade was
  paid (expired, used up): the customer was promised a discount they did not get. Resolved by
  an operator.

Shown by `billing customer show`, `GET /api/subscriptions/issues` and counted in /metrics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from core import audit
from core.errors import InvalidInputError, NotFoundError
from core.text import clean_text
from models import BillingIssue, utcnow

CONFLICT, DISPUTE, PROMOTION = "conflict", "dispute", "promotion"
# Stripe reported meter events invalid after taking them (only a sample of them is named).
METER_ERROR = "meter_error"
KINDS = (CONFLICT, DISPUTE, PROMOTION, METER_ERROR)
# Stripe's dispute statuses after which nothing more is going to happen.
DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed"})


def open_in_stripe() -> ColumnElement[bool]:
    """Disputes Stripe still has open (its status, whatever an operator resolved here): the
    one statement of it, for Money at risk and the overview's count."""
    return and_(BillingIssue.kind == DISPUTE, BillingIssue.stripe_status.not_in(DISPUTE_CLOSED))


def is_open_in_stripe(issue: BillingIssue) -> bool:
    return issue.kind == DISPUTE and issue.stripe_status not in DISPUTE_CLOSED


def _upsert(
    session: Session, *, kind: str, stripe_object_id: str, customer_id: str | None, **values: Any
) -> BillingIssue:
    issue = session.scalar(
        select(BillingIssue).where(
            BillingIssue.kind == kind, BillingIssue.stripe_object_id == stripe_object_id
        )
    )
    if issue is None:
        issue = BillingIssue(kind=kind, stripe_object_id=stripe_object_id, customer_id=customer_id)
        session.add(issue)
    for name, value in values.items():
        setattr(issue, name, value)
    if customer_id and not issue.customer_id:
        issue.customer_id = customer_id
    session.flush()
    return issue


def record_conflict(
    session: Session, customer_id: str, sub: dict[str, Any], followed: str | None
) -> BillingIssue:
    """A second live subscription `sub` next to `followed`, the one the customer's row follows."""
    return _upsert(
        session,
        kind=CONFLICT,
        stripe_object_id=str(sub["id"]),
        customer_id=customer_id,
        stripe_status=str(sub.get("status")),
        detail=(
            f"second live Stripe subscription {sub['id']} ({sub.get('status')}) next to "
            f"{followed}: the customer may be billed twice; cancel one in Stripe"
        ),
        resolved_at=None,
    )


def resolve_conflict(session: Session, stripe_subscription_id: str) -> bool:
    """The subscription recorded as a second live one ended, or became the one the customer's
    row follows (the other ended): it no longer double-bills."""
    issue = session.scalar(
        select(BillingIssue).where(
            BillingIssue.kind == CONFLICT,
            BillingIssue.stripe_object_id == stripe_subscription_id,
            BillingIssue.resolved_at.is_(None),
        )
    )
    if issue is None:
        return False
    issue.resolved_at = utcnow()
    return True


def has_open_conflict(session: Session, stripe_subscription_id: str) -> bool:
    return (
        session.scalar(
            select(BillingIssue.id).where(
                BillingIssue.kind == CONFLICT,
                BillingIssue.stripe_object_id == stripe_subscription_id,
                BillingIssue.resolved_at.is_(None),
            )
        )
        is not None
    )


def record_dispute(
    session: Session, customer_id: str | None, dispute: dict[str, Any]
) -> BillingIssue:
    status = str(dispute.get("status") or "needs_response")
    amount = dispute.get("amount")
    return _upsert(
        session,
        kind=DISPUTE,
        stripe_object_id=str(dispute["id"]),
        customer_id=customer_id,
        stripe_status=status,
        amount_cents=int(amount) if isinstance(amount, int) else None,
        detail=(
            f"charge {dispute.get('charge')} disputed ({dispute.get('reason') or 'no reason'}), "
            f"{status}"
        ),
        resolved_at=utcnow() if status in DISPUTE_CLOSED else None,
    )


def record_refused_promotion(
    session: Session, customer_id: str, subscription_id: str, promotion_id: str, reason: str
) -> BillingIssue:
    return _upsert(
        session,
        kind=PROMOTION,
        stripe_object_id=f"{subscription_id}/{promotion_id}",
        customer_id=customer_id,
        stripe_status="refused",
        detail=(
            f"promotion code {promotion_id} given with the upgrade of {subscription_id} was "
            f"refused by Stripe once the upgrade was paid ({reason}): the upgrade stands, "
            "undiscounted"
        ),
        resolved_at=None,
    )


def open_issues(session: Session, customer_id: str | None = None) -> list[BillingIssue]:
    query = select(BillingIssue).where(BillingIssue.resolved_at.is_(None))
    if customer_id is not None:
        query = query.where(BillingIssue.customer_id == customer_id)
    return list(session.scalars(query.order_by(BillingIssue.created_at, BillingIssue.id)))


def recent_issues(
    session: Session, *, resolved: bool = False, limit: int = 100
) -> list[BillingIssue]:
    """Open issues, oldest first; or the latest resolved ones, newest first."""
    if not resolved:
        return open_issues(session)[:limit]
    query = select(BillingIssue).where(BillingIssue.resolved_at.is_not(None))
    return list(session.scalars(query.order_by(BillingIssue.resolved_at.desc()).limit(limit)))


def get_issue(session: Session, issue_id: int, *, lock: bool = False) -> BillingIssue:
    issue = session.get(BillingIssue, issue_id, with_for_update=lock)
    if issue is None:
        raise NotFoundError(f"no billing issue {issue_id}", field="issueId")
    return issue


def resolution_note(note: object) -> str:
    """The operator's note on a resolution: required."""
    text = clean_text(note, "note", max_length=2000, multi_line=True)
    if text is None:
        raise InvalidInputError("say how it was resolved in a note", field="note")
    return text


def resolve_issue(session: Session, issue_id: int, note: object) -> BillingIssue:
    """An operator's "Resolve": the issue is closed with who did it (the session's actor) and
    their note (required), audited. Resolving a resolved issue changes nothing. A dispute Stripe
    still has open stays open there (and on Money at risk): the entry records its status. The
    caller commits."""
    text = resolution_note(note)
    issue = get_issue(session, issue_id, lock=True)
    if issue.resolved_at is None:
        issue.resolved_at = utcnow()
        issue.resolved_by = audit.actor_of(session)
        issue.resolution_note = text
        session.flush()
        audit.record(
            session,
            "billing_issue.resolve",
            customer_id=issue.customer_id,
            reason=text,
            before={"issue": issue.stripe_object_id, "resolved": False},
            after={"issue": issue.stripe_object_id, "resolved": True}
            | ({"open_in_stripe": issue.stripe_status} if is_open_in_stripe(issue) else {}),
        )
    return issue


def open_issue_counts(session: Session) -> dict[str, int]:
    """Open issues per kind (every kind listed, zero included), for /metrics."""
    rows = session.execute(
        select(BillingIssue.kind, func.count())
        .where(BillingIssue.resolved_at.is_(None))
        .group_by(BillingIssue.kind)
    ).all()
    counts = dict.fromkeys(KINDS, 0)
    counts.update({kind: int(count) for kind, count in rows})
    return counts


def record_meter_error_report(
    session: Session, event_id: str, summary: str, error_count: int
) -> BillingIssue:
    """One issue per error report: how many events Stripe found invalid, in which window and
    why. Only a sample of them is named (and marked failed): the rest are in Stripe's Dashboard
    and are never billed until sent again."""
    return _upsert(
        session,
        kind=METER_ERROR,
        stripe_object_id=event_id,
        customer_id=None,
        stripe_status="reported",
        amount_cents=None,
        detail=summary,
        resolved_at=None,
    )
