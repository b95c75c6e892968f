"""The overview (`/console/`): customers by plan and status, recurring revenue, trials ending,
what waits in the inboxes and queues, and each scheduled job's last run."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.console.auth import SignedInUser
from api.console.rendering import render
from api.deps import DbSession
from core.operations.at_risk import risk_summary
from core.operations.jobs import job_statuses
from core.operations.overview import TRIAL_ENDING_DAYS, overview
from core.settings import get_settings
from workers.beat import scheduled_jobs
from workers.metrics import queue_depths

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
@router.get("/")
def overview_page(request: Request, session: DbSession, user: SignedInUser) -> Response:
    settings = get_settings()
    jobs = job_statuses(session, scheduled_jobs(settings))
    return render(
        request,
        "overview.html",
        {
            "seen": overview(session),
            "risk": risk_summary(session),
            "jobs": jobs,
            "late_jobs": [job for job in jobs if job.warning],
            "queues": queue_depths(settings),
            "flower": f"http://{settings.flower_address}:{settings.flower_port}/",
            "trial_days": TRIAL_ENDING_DAYS,
        },
        user=user,
    )
