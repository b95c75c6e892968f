"""The check-in benchmark's comparison: FastAPI that answers a GET with a license-sized body.

`python -m bench.checkin_bare --port P --workers N` serves it through `cli.processes.serve`, the
set-up of `billing api`. The body is as long as the real check-in's (a license JWT and its public
key PEM) and is built once, so the comparison measures the framework and server alone.
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI
from fastapi.responses import Response

from cli.processes import serve

# A real check-in answer is about 2 kB: the JWT (~1.3 kB), the PEM (~450 B) and a few fields.
BODY = (
    b'{"license":"' + b"x" * 1300 + b'","publicKey":"' + b"y" * 450 + b'","customerId":'
    b'"cust_bench","jti":"0123456789abcdef0123456789abcdef","kid":"kid","issuedAt":'
    b'"2026-01-01T00:00:00Z","expiresAt":"2026-01-15T00:00:00Z","changed":false}'
)

app = FastAPI()


@app.get("/api/licenses/current")
async def bare_check_in() -> Response:
    return Response(BODY, media_type="application/json")


@app.get("/api/licenses/{customer_id}")
async def bare_admin_read(customer_id: str) -> Response:
    return Response(BODY, media_type="application/json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve("bench.checkin_bare:app", host="127.0.0.1", port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
