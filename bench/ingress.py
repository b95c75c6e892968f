"""Ingress benchmark: `POST /api/usage/report` and `POST /webhooks/stripe` under concurrent load.

`./scripts/bench ingress`. The real `billing api` and a bare FastAPI app that only parses the same
JSON and answers 202 (bench/bare_app.py) are served one after the other by the same uvicorn
set-up (`cli.processes.serve`, same worker count), and loaded by the same generator process
(bench/loadgen.py) with the same concurrency and duration. Every usage report and every webhook
event is distinct, so the real endpoints do their full work (license check, INSERT, enqueue) on
every request. Target: real >= 50% of bare throughput, real p99 < 25 ms, at 32 connections,
one `billing api` process with its default settings.

The two servers run side by side and take turns, BENCH_ROUNDS times; the verdict is on the
median of the rounds' ratios (the machine's speed drifts between runs).

Options (environment): BENCH_CONCURRENCY (32), BENCH_DURATION (5 s per round), BENCH_ROUNDS (3),
BENCH_API_WORKERS (1), BENCH_CUSTOMERS (50), BENCH_BASELINE_ROOT (another checkout, with its own
.venv: served as "old" beside the others, and this code's ratios compared with its).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    BenchEnv,
    baseline_command,
    bench_environment,
    billing_command,
    compare_to_baseline,
    free_port,
    load,
    print_table,
    print_verdict,
    running,
    verdict,
    wait_for_http,
)
from bench.profiles import profile_cpu_ms, profile_summary, profiled

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
DURATION = float(os.environ.get("BENCH_DURATION", "5"))
WARMUP = 1.0
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
API_WORKERS = int(os.environ.get("BENCH_API_WORKERS", "1"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "50"))
# Per round (and one more for the profile), more requests than the fastest server answers in
# warm-up + duration; each is sent once.
REQUESTS = int(os.environ.get("BENCH_REQUESTS", str((ROUNDS + 1) * 80_000)))
THROUGHPUT_TARGET = 0.5
P99_TARGET_MS = 25.0
PROFILE_TOP = int(os.environ.get("BENCH_PROFILE_TOP", "12"))
PROFILE_SECONDS = 5.0


def _http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def licensed_customers(
    count: int = CUSTOMERS, email_prefix: str = "bench"
) -> list[tuple[str, str]]:
    """(customer id, license JWT) of new customers, made the way `POST /api/customers` does."""
    from core.customers.service import create_customer
    from core.db import session_scope
    from core.licensing.service import current_license

    made: list[tuple[str, str]] = []
    with session_scope() as session:
        for number in range(count):
            customer = create_customer(
                session,
                email=f"{email_prefix}{number}@example.com",
                company_name=f"Bench {number}",
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


def serve_and_load_alternating(
    commands: dict[str, list[str]], requests: list[bytes], env: BenchEnv, profile: Path
) -> dict[str, list[dict[str, Any]]]:
    """Serve every command at once and load them in turn, ROUNDS times; then profile the last.

    This machine's speed drifts by a quarter between runs of a few seconds (other tenants of
    the host): rounds that alternate between the servers meet the same drift, so the median of
    their ratios says more than one long run of each. Each round sends requests not sent in an
    earlier round (every real report and event is new). The profiler samples a separate load
    after the measured ones: py-spy takes CPU of its own, which on a small machine would
    otherwise be counted against one server only.
    """
    chunks = [requests[i :: ROUNDS + 1] for i in range(ROUNDS + 1)]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    with contextlib.ExitStack() as stack:
        ports, servers = {}, {}
        for name, command in commands.items():
            ports[name] = free_port()
            servers[name] = stack.enter_context(
                running([*command, "--port", str(ports[name]), "--workers", str(API_WORKERS)])
            )
        for port in ports.values():
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
        for round_number in range(ROUNDS):
            # Each server goes first every other round: neither always follows the other.
            names = list(commands) if round_number % 2 == 0 else list(reversed(commands))
            for name in names:
                results[name].append(
                    load(
                        ports[name],
                        chunks[round_number],
                        env.data_dir,
                        concurrency=CONCURRENCY,
                        duration=DURATION,
                        warmup=WARMUP,
                    )
                )
        profiled_name = list(commands)[-1]
        with profiled(servers[profiled_name].pid, PROFILE_SECONDS, profile, delay=1.0):
            profiled_run = load(
                ports[profiled_name],
                chunks[ROUNDS],
                env.data_dir,
                concurrency=CONCURRENCY,
                duration=PROFILE_SECONDS,
                warmup=1.0,
            )
        results[profiled_name][-1]["profiled_requests"] = profiled_run["requests"]
    return results


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
        commands = {"bare": [sys.executable, "-m", "bench.bare_server"]}
        old = baseline_command("api")
        if old is not None:
            commands["old"] = old
        # Last: the one profiled.
        commands["real"] = billing_command("api")
        print(
            f"load: {CONCURRENCY} keep-alive connections, {ROUNDS} rounds of {WARMUP:.0f} s "
            f"warm-up + {DURATION:.0f} s per server, the servers taking turns; generator in its "
            f"own process; servers: {API_WORKERS} uvicorn worker(s) each"
        )
        profiles = {kind: env.data_dir / f"{kind}.profile" for kind in ("usage", "webhook")}
        usage = usage_requests(customers, REQUESTS)
        usage_results = serve_and_load_alternating(commands, usage, env, profiles["usage"])
        del usage
        webhooks = webhook_requests(customers, env.webhook_secret, REQUESTS)
        webhook_results = serve_and_load_alternating(commands, webhooks, env, profiles["webhook"])
        del webhooks
        results = {"usage": usage_results, "webhook": webhook_results}

        with session_scope() as session:
            stored_reports = session.scalar(select(func.count()).select_from(UsageReport))
            stored_events = session.scalar(select(func.count()).select_from(StripeEvent))

        rows = []
        for kind, by_server in results.items():
            for round_number in range(ROUNDS):
                for server, rounds in by_server.items():
                    result = rounds[round_number]
                    rows.append(
                        (
                            f"{kind} {server} #{round_number + 1}",
                            f"{result['rps']:.0f}",
                            f"{result['p50_ms']:.1f}",
                            f"{result['p99_ms']:.1f}",
                            str(result["requests"]),
                            ", ".join(f"{code}: {n}" for code, n in result["statuses"].items()),
                        )
                    )
        print_table(
            "Ingress (requests answered in each measured window)",
            rows,
            ("endpoint, round", "req/s", "p50 ms", "p99 ms", "requests", "statuses"),
        )
        print(f"rows stored: usage_reports {stored_reports}, stripe_events {stored_events}")
        for kind, path in profiles.items():
            print(f"\nprofile of `billing api` serving {kind} reports (py-spy, after the rounds):")
            profiled_requests = results[kind]["real"][-1].get("profiled_requests", 0)
            cpu_ms = profile_cpu_ms(path, profiled_requests)
            if cpu_ms is not None:
                print(f"{cpu_ms:.2f} ms of CPU per request (all threads of the API process)")
            print("\n".join(profile_summary(path, top=PROFILE_TOP)))
        passed_all = True
        for kind, by_server in results.items():
            ratios = [
                real["rps"] / bare["rps"]
                for bare, real in zip(by_server["bare"], by_server["real"], strict=True)
            ]
            ratio = statistics.median(ratios)
            p99 = statistics.median(real["p99_ms"] for real in by_server["real"])
            rps = statistics.median(real["rps"] for real in by_server["real"])
            all_ok = all(_ok(real) == real["requests"] for real in by_server["real"])
            # A server that was sent every request of its round was faster than measured.
            ran_out = any(r.get("exhausted") for rounds in by_server.values() for r in rounds)
            p99s = ", ".join(f"{real['p99_ms']:.1f}" for real in by_server["real"])
            passed = ratio >= THROUGHPUT_TARGET and p99 < P99_TARGET_MS and all_ok and not ran_out
            passed_all &= passed
            print(
                f"{kind}: real/bare throughput, median of {ROUNDS} rounds {ratio:.2f} "
                f"({', '.join(f'{r:.2f}' for r in ratios)}; target >= {THROUGHPUT_TARGET}), "
                f"median p99 {p99:.1f} ms (rounds "
                f"{p99s}) at "
                f"{rps:.0f} req/s (target < {P99_TARGET_MS:.0f} ms), all 2xx: {all_ok}"
                f"{'; requests ran out (raise BENCH_REQUESTS)' if ran_out else ''}"
                f" -> {verdict(passed)}"
            )
        if old is not None:
            print(f"\nagainst the baseline at {os.environ['BENCH_BASELINE_ROOT']}:")
            for kind, by_server in results.items():

                def median_ratio(name: str, rounds: dict[str, list[dict[str, Any]]]) -> float:
                    return statistics.median(
                        server["rps"] / bare["rps"]
                        for bare, server in zip(rounds["bare"], rounds[name], strict=True)
                    )

                old_p99 = statistics.median(r["p99_ms"] for r in by_server["old"])
                print(f"{kind}: old median p99 {old_p99:.1f} ms")
                passed_all &= compare_to_baseline(
                    kind,
                    median_ratio("real", by_server),
                    statistics.median(real["p99_ms"] for real in by_server["real"]),
                    median_ratio("old", by_server),
                )
        print_verdict("ingress", "see above", "real >= 0.5 x bare, p99 < 25 ms", passed_all)


if __name__ == "__main__":
    main()
