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


class ReadyOut(BaseModel):
    status: str
    # "ok", or "unavailable: <why>", per dependency (database, broker).
    checks: dict[str, str]
    error: ErrorBody | None = None


@router.get("/healthz", summary="Liveness: the process answers", responses=error_responses(429))
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and the broker answer",
    response_model=ReadyOut,
    responses={
        503: {"model": ReadyOut, "description": "Not ready: `checks` says what is down"},
        **error_responses(429),
    },
)
async def readyz() -> JSONResponse:
    checks = await run_in_threadpool(readiness, celery_app, get_settings().enqueue_timeout_seconds)
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        body = {
            "status": "unavailable",
            "checks": checks,
            "error": {"code": "unavailable", "message": f"not ready: {', '.join(failing)} down"},
        }
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
