"""The ingress benchmark's comparison: FastAPI that only parses the JSON and answers 202.

Served by `bench.bare_server` through `cli.processes.serve`, the set-up of `billing api`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


async def _parse_and_accept(request: Request) -> JSONResponse:
    body: Any = json.loads(await request.body())
    return JSONResponse({"status": "accepted", "keys": len(body)}, status_code=202)


@app.post("/api/usage/report")
async def bare_usage(request: Request) -> JSONResponse:
    return await _parse_and_accept(request)


@app.post("/webhooks/stripe")
async def bare_webhook(request: Request) -> JSONResponse:
    return await _parse_and_accept(request)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
