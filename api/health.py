from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.schemas import ErrorBody, error_responses
from core.health import readiness
from core.settings import get_settings
from workers.celery_app import celery_app

router = APIRouter(tags=["health"])

REQUIRED_FOR_READINESS = ("database",)


class ReadyOut(BaseModel):
    status: str
    # "ok", or "unavailable: <why>", per dependency (database, broker). Only the database decides
    # readiness; the broker is reported so operators see it.
    checks: dict[str, str]
    error: ErrorBody | None = None


@router.get("/healthz", summary="Liveness: the process answers", responses=error_responses(429))
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: a 2xx is possible (the database answers); the broker is reported",
    response_model=ReadyOut,
    responses={
        503: {"model": ReadyOut, "description": "Not ready: the database is down"},
        **error_responses(429),
    },
)
async def readyz() -> JSONResponse:
    """Ready means the service can answer 2xx: every write path stores to the database first and
    a broker outage only delays the work (the sweepers publish it later), so a broker outage
    must not take the API out of the load balancer during exactly the outage it survives."""
    checks = await run_in_threadpool(readiness, celery_app, get_settings().enqueue_timeout_seconds)
    failing = [name for name in REQUIRED_FOR_READINESS if checks.get(name) != "ok"]
    if failing:
        body = {
            "status": "unavailable",
            "checks": checks,
            "error": {"code": "unavailable", "message": f"not ready: {', '.join(failing)} down"},
        }
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
