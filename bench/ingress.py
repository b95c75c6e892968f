"""Ingress benchmark: `POST /api/usage/report` and `POST /webhooks/stripe` under concurrent load.

`./scripts/bench ingress`. The real `billing api` and a bare FastAPI app that only parses the same
JSON and answers 202 (bench/bare_app.py) are served one after the other by the same uvicorn
set-up (`cli.processes.serve`, same worker count), and loaded by the same generator process
(bench/loadgen.py) with the same concurrency and duration. Every usage report and every webhook
event is distinct, so the real endpoints do their full work (license check, INSERT, enqueue) on
every request. Target (#13): real >= 50% of bare throughput, real p99 < 25 ms, at 32 connections,
one `billing api` process with its default settings.

Options (environment): BENCH_CONCURRENCY (32), BENCH_DURATION (10 s), BENCH_API_WORKERS (1),
BENCH_CUSTOMERS (50).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    BenchEnv,
    bench_environment,
    billing_command,
    free_port,
    load,
    print_table,
    print_verdict,
    profile_cpu_ms,
    profile_summary,
    profiled,
    running,
    verdict,
    wait_for_http,
)

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
DURATION = float(os.environ.get("BENCH_DURATION", "10"))
WARMUP = 2.0
API_WORKERS = int(os.environ.get("BENCH_API_WORKERS", "1"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "50"))
# More requests than the fastest server answers in warm-up + duration; each is sent once.
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "120000"))
THROUGHPUT_TARGET = 0.5
P99_TARGET_MS = 25.0
PROFILE_TOP = int(os.environ.get("BENCH_PROFILE_TOP", "12"))
PROFILE_SECONDS = 5.0


def _http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def licensed_customers(count: int = CUSTOMERS) -> list[tuple[str, str]]:
    """(customer id, license JWT) of new customers, made the way `POST /api/customers` does."""
    from core.customers.service import create_customer
    from core.db import session_scope
    from core.licensing.service import current_license

    made: list[tuple[str, str]] = []
    with session_scope() as session:
        for number in range(count):
            customer = create_customer(
                session, email=f"bench{number}@example.com", company_name=f"Bench {number}"
            )
            session.flush()
            made.append((customer.customer_id, ""))
    with session_scope() as session:
        return [
            (customer_id, current_license(session, customer_id).token)  # type: ignore[union-attr]
            for customer_id, _ in made
        ]


def usage_requests(customers: list[tuple[str, str]], count: int) -> list[bytes]:
    """Distinct reports (the instances' own timestamps differ), as instances send them."""
    base = datetime.now(UTC) - timedelta(hours=1)
    requests = []
    for number in range(count):
        customer_id, token = customers[number % len(customers)]
        body = {
            "customerId": customer_id,
            "instanceId": f"instance-{number % 7}",
            "timestamp": (base - timedelta(milliseconds=number)).isoformat(timespec="milliseconds"),
            "metrics": {"activeDevices": number % 40, "totalDevices": 40},
        }
        payload = json.dumps(body).encode()
        requests.append(
            _http_request("/api/usage/report", payload, {"Authorization": f"Bearer {token}"})
        )
    return requests


def _event(number: int, customer_id: str, created: int) -> dict[str, Any]:
    """A checkout.session.completed event shaped like Stripe's (about 2 kB, as Stripe sends)."""
    return {
        "id": f"evt_bench{number:010d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": f"cs_test_bench{number:010d}",
                "object": "checkout.session",
                "amount_subtotal": 9900,
                "amount_total": 9900,
                "client_reference_id": customer_id,
                "currency": "usd",
                "customer": f"cus_bench{number % 1000:06d}",
                "customer_details": {"email": "bench@example.com", "name": "Bench"},
                "metadata": {"customerId": customer_id, "plan": "professional"},
                "mode": "subscription",
                "payment_status": "paid",
                "status": "complete",
                "subscription": f"sub_bench{number:010d}",
                "success_url": "https://app.zemfyre.com/success",
                "cancel_url": "https://app.zemfyre.com/pricing",
                "url": None,
            }
        },
    }


def webhook_requests(customers: list[tuple[str, str]], secret: str, count: int) -> list[bytes]:
    """Distinct events, each signed as Stripe signs them (pretty JSON, t=...,v1=...)."""
    now = int(time.time())
    requests = []
    for number in range(count):
        payload = json.dumps(
            _event(number, customers[number % len(customers)][0], now), indent=2
        ).encode()
        mac = hmac.new(secret.encode(), f"{now}.".encode() + payload, hashlib.sha256)
        requests.append(
            _http_request(
                "/webhooks/stripe", payload, {"Stripe-Signature": f"t={now},v1={mac.hexdigest()}"}
            )
        )
    return requests


def _serve_and_load(
    command: list[str], requests: list[bytes], env: BenchEnv, profile: Path | None = None
) -> dict[str, Any]:
    """Serve, measure, and then (same server, requests not sent before) profile.

    The profiler samples a separate load after the measured one: py-spy takes CPU of its own,
    which on a small machine would otherwise be counted against the real server only.
    """
    port = free_port()
    measured, spare = requests, []
    if profile is not None:
        measured, spare = requests[: len(requests) * 2 // 3], requests[len(requests) * 2 // 3 :]
    with running([*command, "--port", str(port), "--workers", str(API_WORKERS)]) as server:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        result = load(
            port,
            measured,
            env.data_dir,
            concurrency=CONCURRENCY,
            duration=DURATION,
            warmup=WARMUP,
        )
        if profile is not None:
            with profiled(server.pid, PROFILE_SECONDS, profile, delay=1.0):
                profiled_run = load(
                    port,
                    spare,
                    env.data_dir,
                    concurrency=CONCURRENCY,
                    duration=PROFILE_SECONDS,
                    warmup=1.0,
                )
            result["profiled_requests"] = profiled_run["requests"]
        return result


def _ok(result: dict[str, Any]) -> int:
    return sum(count for status, count in result["statuses"].items() if status.startswith("2"))


def main() -> None:
    with bench_environment(
        "ingress",
        # Load tests send far more than an instance would: lift the per-instance limit.
        RATE_LIMIT_USAGE_PER_INSTANCE="1000000000",
        RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT="1000000000",
    ) as env:
        from sqlalchemy import func, select

        from core.db import session_scope
        from models import StripeEvent, UsageReport

        customers = licensed_customers()
        real = billing_command("api")
        bare = [sys.executable, "-m", "bench.bare_server"]
        results: dict[str, dict[str, Any]] = {}
        print(
            f"load: {CONCURRENCY} keep-alive connections, {WARMUP:.0f} s warm-up + "
            f"{DURATION:.0f} s, generator in its own process; servers: {API_WORKERS} uvicorn "
            f"worker(s) each"
        )
        usage = usage_requests(customers, REQUESTS)
        results["usage bare"] = _serve_and_load(bare, usage, env)
        usage_profile = env.data_dir / "usage.profile"
        results["usage real"] = _serve_and_load(real, usage, env, usage_profile)
        del usage
        webhooks = webhook_requests(customers, env.webhook_secret, REQUESTS)
        results["webhook bare"] = _serve_and_load(bare, webhooks, env)
        webhook_profile = env.data_dir / "webhook.profile"
        results["webhook real"] = _serve_and_load(real, webhooks, env, webhook_profile)
        del webhooks

        with session_scope() as session:
            stored_reports = session.scalar(select(func.count()).select_from(UsageReport))
            stored_events = session.scalar(select(func.count()).select_from(StripeEvent))

        rows = []
        for name, result in results.items():
            rows.append(
                (
                    name,
                    f"{result['rps']:.0f}",
                    f"{result['p50_ms']:.1f}",
                    f"{result['p99_ms']:.1f}",
                    str(result["requests"]),
                    ", ".join(f"{code}: {n}" for code, n in result["statuses"].items()),
                )
            )
        print_table(
            "Ingress (requests answered in the measured window)",
            rows,
            ("endpoint", "req/s", "p50 ms", "p99 ms", "requests", "statuses"),
        )
        print(f"rows stored: usage_reports {stored_reports}, stripe_events {stored_events}")
        for kind, path in (("usage", usage_profile), ("webhook", webhook_profile)):
            print(f"\nprofile of `billing api` serving {kind} reports (py-spy, 5 s after the run):")
            cpu_ms = profile_cpu_ms(path, results[f"{kind} real"].get("profiled_requests", 0))
            if cpu_ms is not None:
                print(f"{cpu_ms:.2f} ms of CPU per request (all threads of the API process)")
            print("\n".join(profile_summary(path, top=PROFILE_TOP)))
        passed_all = True
        for kind in ("usage", "webhook"):
            bare_r, real_r = results[f"{kind} bare"], results[f"{kind} real"]
            ratio = real_r["rps"] / bare_r["rps"]
            all_ok = _ok(real_r) == real_r["requests"]
            passed = ratio >= THROUGHPUT_TARGET and real_r["p99_ms"] < P99_TARGET_MS and all_ok
            passed_all &= passed
            print(
                f"{kind}: real/bare throughput {ratio:.2f} (target >= {THROUGHPUT_TARGET}), "
                f"p99 {real_r['p99_ms']:.1f} ms at {real_r['rps']:.0f} req/s (target < "
                f"{P99_TARGET_MS:.0f} ms), all 2xx: {all_ok} -> {verdict(passed)}"
            )
        print_verdict("ingress", "see above", "real >= 0.5 x bare, p99 < 25 ms", passed_all)


if __name__ == "__main__":
    main()
