"""Usage reports in: store each report once (parsing is core/usage/parsing.py).

The ingress does the least possible work: verify the license (api/usage.py), parse the body, then
a group of concurrent reports is admitted (each instance's rate limit) and stored by
`receive_reports` with one write (one license check, then one multi-row INSERT ... ON CONFLICT DO
NOTHING), in the process's report ingress (`start_report_ingress`, core/ingress/). Everything
else happens in workers (core/usage/processing.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.db_steps import Query, Steps, insert_many, many_rows, run_steps
from core.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    PermissionDeniedError,
)
from core.ingress import Ingress
from core.ingress.batcher import Coalescer
from core.licensing.instance_auth import InstanceIdentity
from core.licensing.lookup import LicenseFacts, checking_presented_licenses
from core.request_limits import usage_refusals
from core.settings import get_settings
from core.usage.parsing import ReportInput
from models import UsageReport, utcnow

__all__ = [
    "ReportInput",
    "ReportToStore",
    "StoredReport",
    "receive_reports",
    "start_report_ingress",
    "store_reports",
]


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class StoredReport:
    report_id: int
    duplicate: bool


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class ReportToStore:
    report: ReportInput
    license_jti: str | None
    idempotency_key: str | None = None
    received_at: datetime | None = None
    # What the process knows of the presented license (`known_license_facts`), if anything.
    license_facts: LicenseFacts | None = None


_REPORT_COLUMNS = (
    "customer_id",
    "instance_id",
    "active_devices",
    "total_devices",
    "reported_at",
    "idempotency_key",
    "license_jti",
    "attempts",
    "created_at",
)
_RETURNED = ("id", "customer_id", "instance_id", "reported_at")


def store_reports(
    session: Session, incoming: Sequence[ReportToStore]
) -> list[StoredReport | ConflictError]:
    """`storing_reports` in the caller's session (which commits, then enqueues processing)."""
    return run_steps(session, storing_reports(session.get_bind().dialect.name, incoming))


def storing_reports(
    dialect: str, incoming: Sequence[ReportToStore]
) -> Steps[list[StoredReport | ConflictError]]:
    """Store many reports with one multi-row INSERT; per report its row, or why it conflicts.

    A resend (same customer, instance and time, or same Idempotency-Key) is not stored again:
    it gets the first one's id with `duplicate`. Either unique key means "already stored", so
    the INSERT names no conflict target and neither raises.
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
    statement = insert_many(UsageReport.__table__, _REPORT_COLUMNS, _RETURNED, dialect)
    returned = yield Query(statement, many_rows(dialect, rows, _REPORT_COLUMNS))
    inserted = {
        (row["customer_id"], row["instance_id"], row["reported_at"]): row["id"] for row in returned
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
            existing = yield from _existing_report_id(report, item.idempotency_key)
        except ConflictError as conflict:
            outcomes.append(conflict)
        else:
            outcomes.append(StoredReport(existing, duplicate=True))
    return outcomes


# Made for every request: not frozen, since a frozen dataclass costs four times as much to build.
@dataclass(slots=True)
class ReceivedReport:
    stored: StoredReport
    # The customer's current license when it is not the one the instance presented.
    newer_license: str | None


def receive_reports(
    dialect: str, incoming: Sequence[tuple[InstanceIdentity, ReportToStore]]
) -> Steps[list[ReceivedReport | DomainError]]:
    """The ingress's database work for a group of reports whose tokens were verified.

    One query checks the licenses the process does not know yet (refused ones, newer ones to
    hand back), one INSERT stores the reports; only resends cost more (their stored ids, read
    after the INSERT). The caller
    commits (the ingress: the INSERT commits by itself) and enqueues the new reports.
    """
    identities = [identity for identity, _ in incoming]
    known = {
        identity.jti: item.license_facts
        for identity, item in incoming
        if item.license_facts is not None
    }
    checks = yield from checking_presented_licenses(dialect, identities, known)

    def refusal(identity: InstanceIdentity, item: ReportToStore) -> DomainError | None:
        reason = checks[identity.jti].refusal
        if reason is not None:
            return AuthenticationError(reason)
        return _refusal_for_customer(identity, item)

    accepted = [item for identity, item in incoming if refusal(identity, item) is None]
    stored = iter((yield from storing_reports(dialect, accepted)))
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


# The stored report a resend stands for, by either unique key.
_BY_IDEMPOTENCY_KEY = select(
    UsageReport.id, UsageReport.instance_id, UsageReport.active_devices, UsageReport.total_devices
).where(
    UsageReport.customer_id == bindparam("customer_id"),
    UsageReport.idempotency_key == bindparam("idempotency_key"),
)
_BY_INSTANCE_AND_TIME = select(UsageReport.id).where(
    UsageReport.customer_id == bindparam("customer_id"),
    UsageReport.instance_id == bindparam("instance_id"),
    UsageReport.reported_at == bindparam("reported_at"),
)


def _existing_report_id(report: ReportInput, idempotency_key: str | None) -> Steps[int]:
    if idempotency_key is not None:
        rows = yield Query(
            _BY_IDEMPOTENCY_KEY,
            {"customer_id": report.customer_id, "idempotency_key": idempotency_key},
        )
        if rows:
            row = rows[0]
            same = (row["instance_id"], row["active_devices"], row["total_devices"]) == (
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
            return int(row["id"])
    rows = yield Query(
        _BY_INSTANCE_AND_TIME,
        {
            "customer_id": report.customer_id,
            "instance_id": report.instance_id,
            "reported_at": report.reported_at,
        },
    )
    if not rows:  # pragma: no cover - the conflicting row cannot vanish (no deletes)
        raise ConflictError("the report conflicts with another one; send it again")
    return int(rows[0]["id"])


ReportIngress = Ingress[tuple[InstanceIdentity, ReportToStore], ReceivedReport, int]


def start_report_ingress(publish: Callable[[list[int]], None]) -> ReportIngress:
    """The report ingress of an API process, made at its start-up: concurrent reports are
    admitted by their instances' limits and stored together (one Redis call, one INSERT a
    group); the ids of the new ones go to `publish` together, many groups' at a time (the
    caller's task publish; a failed publish is left to the sweeper)."""
    to_workers: Coalescer[int] = Coalescer(
        publish, max_chunk=get_settings().usage_process_batch_size
    )
    return Ingress.start(receive_reports, to_workers, _new_report_ids, admit=_within_limits)


def _new_report_ids(
    _: list[tuple[InstanceIdentity, ReportToStore]],
    outcomes: Sequence[ReceivedReport | DomainError | Exception],
) -> list[int]:
    return [
        outcome.stored.report_id
        for outcome in outcomes
        if isinstance(outcome, ReceivedReport) and not outcome.stored.duplicate
    ]


async def _within_limits(
    group: list[tuple[InstanceIdentity, ReportToStore]],
) -> list[Exception | None]:
    return await usage_refusals(
        [(identity.customer_id, item.report.instance_id) for identity, item in group]
    )
