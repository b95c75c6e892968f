"""Usage: instances report device counts (the hot path); operators read the usage viewer."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator

from api.deps import BearerCredentials, DbSession, bearer_token
from api.ingress_lane import LaneAnswer, LaneRequest, answer_in_framework
from api.schemas import CamelModel, CustomerIdPath, OrUnlimited, error_responses, wire_model
from core.api_keys import KEY_PREFIX, authenticate_api_key
from core.errors import PermissionDeniedError
from core.licensing.instance_auth import verify_instance_token
from core.licensing.lookup import authenticate_instance, known_license_facts
from core.request_limits import usage_refused
from core.settings import get_settings
from core.usage.ingest import ReportIngress, ReportToStore, start_report_ingress
from core.usage.parsing import idempotency_key_for, parse_report_body
from core.viewer.queries import (
    DEFAULT_DAYS,
    MAX_DAYS,
    CustomerInfo,
    CustomerUsage,
    DayPoint,
    ReportRetention,
    ReportRow,
    UsageSummary,
    customer_usage,
)
from models import utcnow
from workers import task_names
from workers.enqueue import enqueue


def settle_heap() -> None:
    """Keep the garbage collector's pauses out of the ingress's latency (once per process).

    What start-up made (routes, models, compiled statements, the settings) lives as long as the
    process; a full collection walked all of it every time, and those pauses were the ingress's
    p99 (103 -> 26 ms in bench/ingress.py). Frozen, they are never scanned again; a larger
    first-generation threshold then collects request garbage in fewer, equally short passes
    (p99 21 ms, and 0.87 -> 0.47 ms of CPU per report). Reference counting frees almost all of
    it anyway; the collector is only for cycles.
    """
    global _heap_settled
    if _heap_settled:  # a process that builds several apps (the tests) freezes only once
        return
    _heap_settled = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


_heap_settled = False


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Start-up of each API process (merged into the app's lifespan by include_router).
    ingress = app.state.report_ingress = build_report_ingress()
    settle_heap()
    yield
    # Shutdown: the groups in flight are committed and their ids published before we go.
    await ingress.aclose()


router = APIRouter(prefix="/api/usage", tags=["usage"], lifespan=_lifespan)

REPORT_EXAMPLES: dict[str, Any] = {
    "camelCase": {
        "summary": "Nested format with metrics",
        "value": {
            "customerId": "cust_abc123xyz",
            "instanceId": "us-east-1",
            "timestamp": "2025-10-21T10:00:00Z",
            "metrics": {"activeDevices": 23, "totalDevices": 30},
        },
    },
    "snake_case": {
        "summary": "Flat format (timestamp defaults to now)",
        "value": {
            "customer_id": "cust_abc123xyz",
            "instance_id": "dev-1",
            "active_devices": 5,
            "total_devices": 10,
        },
    },
}


def build_report_ingress() -> ReportIngress:
    """Made once per API process at start-up (`_lifespan`). The reports' task is sent by its
    name (the API never imports tasks/)."""

    def publish(report_ids: list[int]) -> None:
        # Quietly when the broker is down: the rows are committed and the sweeper processes
        # whatever was not published.
        enqueue(task_names.PROCESS_REPORT_BATCH, report_ids)

    return start_report_ingress(publish)


@router.post(
    "/report",
    status_code=202,
    summary="Receive a usage report from a customer instance (license JWT as Bearer)",
    responses={
        202: {"description": "Stored (or already stored: `duplicate: true`); processed later"},
        **error_responses(413, 429, 503),
        401: {
            **error_responses(401)[401],
            "description": "Missing, forged, expired or revoked license",
        },
        403: {**error_responses(403)[403], "description": "The license is another customer's"},
        409: {
            **error_responses(409)[409],
            "description": "Idempotency-Key already used for a different report",
        },
        422: {**error_responses(422)[422], "description": "Invalid report; `error.field` names it"},
    },
    # The hot path reads its request itself (no dependency to solve per call); this documents
    # what it reads. The body is decoded once, by parse_report_body.
    openapi_extra={
        "security": [{"HTTPBearer": []}],
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {}, "examples": REPORT_EXAMPLES}},
        },
    },
)
async def report_usage(request: Request) -> JSONResponse:
    # The application answers this route in its ingress lane (api/app.py) without coming here;
    # the declaration documents it.
    return await answer_in_framework(receive_report, request)


async def receive_report(request: LaneRequest) -> LaneAnswer:
    """A usage report in: verified, then limited per instance and stored with its group."""
    # Everything up to the batch needs no database: the license's signature (verified once per
    # token) and the body. Refusals here cost no round trip.
    identity = verify_instance_token(request.bearer_token())
    now = utcnow()
    settings = get_settings()
    max_skew = timedelta(seconds=settings.usage_max_clock_skew_seconds)
    report = parse_report_body(request.body, now=now, max_skew=max_skew)
    key = idempotency_key_for(report, request.header(b"idempotency-key"), now)
    item = ReportToStore(report, identity.jti, key, now, known_license_facts(identity.jti))
    # An instance or license already over its limit in this window is refused at once, not
    # behind a group.
    refused = usage_refused(identity.customer_id, report.instance_id)
    if refused is not None:
        raise refused
    ingress: ReportIngress = request.state.report_ingress
    received = await ingress.batcher.submit((identity, item))
    answer: dict[str, Any] = {"status": "accepted", "reportId": received.stored.report_id}
    if received.stored.duplicate:
        answer["duplicate"] = True
    if received.newer_license is not None:
        # The instance presented an older license: hand it the current one.
        answer["license"] = received.newer_license
    return 202, answer


# ---------------------------------------------------------------------------------------------
# The usage viewer


# The viewer's blocks are the service's results (core/viewer/queries.py) on the wire.
CustomerBlock = wire_model(
    CustomerInfo, "CustomerBlock", only=("customer_id", "email", "name", "company_name")
)
ReportOut = wire_model(ReportRow, "ReportOut")
# Percent of the device limit in use (utilization) is null when the plan is unlimited.
SummaryOut = wire_model(UsageSummary, "SummaryOut", limit=OrUnlimited, remaining=OrUnlimited)
DayOut = wire_model(DayPoint, "DayOut")


class RetentionOut(CamelModel):
    """Raw reports are kept USAGE_REPORT_RETENTION_DAYS; a window reaching further lists only
    the kept ones (its daily figures and summary come from the daily rollup), and says so."""

    kept_days: int
    kept_since: datetime
    window_reaches_past: bool
    note: str | None


def _retention_out(retention: ReportRetention) -> RetentionOut:
    return RetentionOut(
        kept_days=retention.kept_days,
        kept_since=retention.kept_since,
        window_reaches_past=retention.window_reaches_past,
        note=retention.note,
    )


class SubscriptionBlock(CamelModel):
    plan: str | None
    status: str | None
    device_limit: OrUnlimited
    renewal_date: datetime | None


class OverageDayOut(CamelModel):
    day: date
    billable_device_days: int


def _overage_days(daily: list[tuple[date, int]]) -> list[dict[str, Any]]:
    # The estimate gives (day, billable device-days) pairs.
    return [{"day": day, "billable_device_days": n} for day, n in daily]


class OverageOut(CamelModel):
    """Devices above the limit, billed per device-day through Stripe's meter (docs/stripe.md,
    "Usage-based billing"). The estimate includes today so far; the meter is sent each finished
    day."""

    billed: bool
    unit_price_cents: int | None
    period_start: date | None
    period_device_days: int
    estimated_charge_cents: int
    daily: Annotated[list[OverageDayOut], BeforeValidator(_overage_days)]
    # Days of an invoiced period whose device-days were sent late and are billed in this one
    # (counted in periodDeviceDays).
    carried_over: Annotated[list[OverageDayOut], BeforeValidator(_overage_days)]


class UsageOut(CamelModel):
    customer: CustomerBlock  # type: ignore[valid-type]
    subscription: SubscriptionBlock
    days: int
    since: datetime
    reports: list[ReportOut]  # type: ignore[valid-type]
    summary: SummaryOut  # type: ignore[valid-type]
    daily: list[DayOut]  # type: ignore[valid-type]
    overage: OverageOut | None = None
    retention: RetentionOut | None = None


def usage_out(usage: CustomerUsage) -> UsageOut:
    info = usage.customer
    return UsageOut(
        customer=CustomerBlock.model_validate(info),
        subscription=SubscriptionBlock(
            plan=info.plan,
            status=info.status,
            device_limit=usage.summary.limit,
            renewal_date=info.renewal_date,
        ),
        days=usage.days,
        since=usage.since,
        reports=[ReportOut.model_validate(row) for row in usage.reports],
        summary=SummaryOut.model_validate(usage.summary),
        daily=[DayOut.model_validate(point) for point in usage.daily],
        overage=None if usage.overage is None else OverageOut.model_validate(usage.overage),
        retention=None if usage.retention is None else _retention_out(usage.retention),
    )


def _authorize_reader(session: DbSession, credentials: BearerCredentials, customer_id: str) -> None:
    """An admin key reads any customer; an instance's license reads only its own customer."""
    token = bearer_token(credentials)
    if token.startswith(KEY_PREFIX):
        authenticate_api_key(session, token)
        return
    identity = authenticate_instance(session, token)
    if identity.customer_id != customer_id:
        raise PermissionDeniedError("this license may only read its own customer's usage")


@router.get(
    "/{customer_id}",
    summary="Usage history and summary of a customer (admin, or the customer's own license)",
    response_model=UsageOut,
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
def get_usage(
    customer_id: CustomerIdPath,
    session: DbSession,
    credentials: BearerCredentials,
    days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="Last N UTC days"),
    limit: int = Query(1000, ge=1, le=10000, description="Most reports listed (newest first)"),
) -> UsageOut:
    _authorize_reader(session, credentials, customer_id)
    return usage_out(customer_usage(session, customer_id, days=days, report_limit=limit))
