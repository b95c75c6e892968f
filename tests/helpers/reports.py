"""Storing one usage report, as the tests set up usage: the service stores batches
(core.usage.ingest.store_reports); this is its one-report form."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.usage.ingest import ReportToStore, StoredReport, store_reports
from core.usage.parsing import ReportInput


def store_report(
    session: Session,
    report: ReportInput,
    *,
    license_jti: str | None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> StoredReport:
    """Store one report once; a resend (same instance and time, or same key) finds the first."""
    outcome = store_reports(session, [ReportToStore(report, license_jti, idempotency_key, now)])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
