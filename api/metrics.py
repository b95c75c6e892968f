from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import AdminKey
from api.schemas import error_responses
from core.billing.monitoring import register_billing_collector
from core.metrics import REGISTRY
from workers.metrics import register_cluster_collector

router = APIRouter(tags=["operations"])


def install_cluster_metrics() -> None:
    """Queue depth, task outcomes and inbox backlog join the /metrics the API serves."""
    register_cluster_collector(REGISTRY)
    register_billing_collector(REGISTRY)


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin key)",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
        **error_responses(401, 429, 503),
    },
)
async def metrics(_: AdminKey) -> Response:
    body = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
