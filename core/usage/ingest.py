"""Usage reports in: store each report once (parsing is core/usage/parsing.py).

The ingress does the least possible work: verify the license (api/), parse the body, then a
group of concurrent reports is stored by `receive_reports` in one transaction (one license check,
one multi-row INSERT ... ON CONFLICT DO NOTHING, one COMMIT; see core/batching.py).
Everything else happens in workers (core/usage/processing.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import insert_for
from core.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    PermissionDeniedError,
)
from core.licensing.instance_auth import InstanceIdentity, check_licenses
from core.usage.parsing import ReportInput
from models import UsageReport, utcnow

__all__ = ["ReportInput", "ReportToStore", "StoredReport", "store_reports"]


@dataclass(frozen=True, slots=True)
class StoredReport:
    report_id: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ReportToStore:
    report: ReportInput
    license_jti: str | None
    idempotency_key: str | None = None
    received_at: datetime | None = None


@lru_cache(maxsize=2)
def _insert_report_statement(dialect: str):  # type: ignore[no-untyped-def]
    # No conflict target: either unique key (instance + time, or idempotency key) means
    # "already stored", and neither may raise. Run with many parameter sets (SQLAlchemy's
    # "insertmanyvalues"): one round trip, and compiled once per process rather than once per
    # batch size as `.values(rows)` would be.
    return (
        insert_for(dialect)(UsageReport.__table__)
        .on_conflict_do_nothing()
        .returning(
            UsageReport.id,
            UsageReport.customer_id,
            UsageReport.instance_id,
            UsageReport.reported_at,
        )
    )


def _insert_reports(session: Session):  # type: ignore[no-untyped-def]
    return _insert_report_statement(session.get_bind().dialect.name)


def store_reports(
    session: Session, incoming: Sequence[ReportToStore]
) -> list[StoredReport | ConflictError]:
    """Store many reports with one multi-row INSERT; per report its row, or why it conflicts.

    A resend (same customer, instance and time, or same Idempotency-Key) is not stored again:
    it gets the first one's id with `duplicate`. The caller commits, then enqueues processing.
    """
    if not incoming:
        return []
    now = utcnow()
    rows = [
        {
            "customer_id": item.report.customer_id,
            "instance_id": item.report.instance_id,
            "active_devices": item.report.active_devices,
            "total_devices": item.report.total_devices,
            "reported_at": item.report.reported_at,
            "idempotency_key": item.idempotency_key,
            "license_jti": item.license_jti,
            "attempts": 0,
            "created_at": item.received_at or now,
        }
        for item in incoming
    ]
    inserted = {
        (row.customer_id, row.instance_id, row.reported_at): row.id
        for row in session.connection().execute(_insert_reports(session), rows)
    }
    outcomes: list[StoredReport | ConflictError] = []
    for item in incoming:
        report = item.report
        # pop: of two identical reports in one batch, only the first was inserted.
        report_id = inserted.pop((report.customer_id, report.instance_id, report.reported_at), None)
        if report_id is not None:
            outcomes.append(StoredReport(report_id, duplicate=False))
            continue
        try:
            existing = _existing_report_id(session, report, item.idempotency_key)
        except ConflictError as conflict:
            outcomes.append(conflict)
        else:
            outcomes.append(StoredReport(existing, duplicate=True))
    return outcomes


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    stored: StoredReport
    # The customer's current license when it is not the one the instance presented.
    newer_license: str | None


def receive_reports(
    session: Session, incoming: Sequence[tuple[InstanceIdentity, ReportToStore]]
) -> list[ReceivedReport | DomainError]:
    """The ingress's database work for a group of reports whose tokens were verified.

    One query checks the licenses (refused ones, newer ones to hand back), one INSERT stores the
    reports. The caller commits and enqueues the new reports.
    """
    checks = check_licenses(session, [identity for identity, _ in incoming])

    def refusal(identity: InstanceIdentity, item: ReportToStore) -> DomainError | None:
        reason = checks[identity.jti].refusal
        if reason is not None:
            return AuthenticationError(reason)
        return _refusal_for_customer(identity, item)

    accepted = [item for identity, item in incoming if refusal(identity, item) is None]
    stored = iter(store_reports(session, accepted))
    outcomes: list[ReceivedReport | DomainError] = []
    for identity, item in incoming:
        refused = refusal(identity, item)
        outcome = refused or next(stored)
        if isinstance(outcome, DomainError):
            outcomes.append(outcome)
        else:
            outcomes.append(ReceivedReport(outcome, checks[identity.jti].newer_license))
    return outcomes


def _refusal_for_customer(identity: InstanceIdentity, item: ReportToStore) -> DomainError | None:
    # Checked after the license itself, so a revoked license is a 401 whatever it reports for.
    if item.report.customer_id != identity.customer_id:
        return PermissionDeniedError(
            "this license may only report usage for its own customer", field="customerId"
        )
    return None


def _existing_report_id(session: Session, report: ReportInput, idempotency_key: str | None) -> int:
    if idempotency_key is not None:
        row = session.execute(
            select(
                UsageReport.id,
                UsageReport.instance_id,
                UsageReport.active_devices,
                UsageReport.total_devices,
            ).where(
                UsageReport.customer_id == report.customer_id,
                UsageReport.idempotency_key == idempotency_key,
            )
        ).first()
        if row is not None:
            same = (row.instance_id, row.active_devices, row.total_devices) == (
                report.instance_id,
                report.active_devices,
                report.total_devices,
            )
            if not same:
                # Reusing a key for other numbers is a client bug; silently dropping the new
                # numbers would hide it.
                raise ConflictError(
                    "Idempotency-Key was already used for a different report",
                    field="Idempotency-Key",
                )
            return row.id
    report_id = session.scalar(
        select(UsageReport.id).where(
            UsageReport.customer_id == report.customer_id,
            UsageReport.instance_id == report.instance_id,
            UsageReport.reported_at == report.reported_at,
        )
    )
    if report_id is None:  # pragma: no cover - the conflicting row cannot vanish (no deletes)
        raise ConflictError("the report conflicts with another one; send it again")
    return report_id
