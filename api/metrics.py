from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import AdminKey
from core.metrics import REGISTRY

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics (admin key)", response_class=Response)
async def metrics(_: AdminKey) -> Response:
    body = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
