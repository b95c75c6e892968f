"""Check-in benchmark: `GET /api/licenses/current` (instances) and `GET /api/licenses/{id}` (admin).

`./scripts/bench checkin`. The real `billing api` and a bare FastAPI app that answers the same
paths with a body of the same size built once (bench/checkin_bare.py) are served one after the
other by the same uvicorn set-up (`cli.processes.serve`, one process), and loaded by the same
generator process (bench/loadgen.py): 32 keep-alive connections, closed loop. The instances'
requests cycle through BENCH_CUSTOMERS licenses, each presented as instances do (Bearer JWT); the
admin reads cycle through the same customers with an admin API key. Nothing is weakened for the
run: the license is verified, its revocation checked and the current one served on every call.

Then a short cProfile of the real check-in under the same load prints where its time goes.

Targets: real >= 0.5 x bare throughput and p99 < 25 ms, for both paths.
Options (environment): BENCH_CONCURRENCY (32), BENCH_DURATION (10 s), BENCH_CUSTOMERS (50),
BENCH_BASELINE_ROOT (another checkout, with its own .venv: served as "old" too, and this code's
ratios compared with its), BENCH_PROFILE_SECONDS (5; 0 skips the profile),
BENCH_PROFILE_LINES (15), BENCH_PROFILE_SORT (tottime, or cumtime).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import signal
import sys
from pathlib import Path
from typing import Any

from bench.common import (
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

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
DURATION = float(os.environ.get("BENCH_DURATION", "10"))
WARMUP = 2.0
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "50"))
PROFILE_SECONDS = float(os.environ.get("BENCH_PROFILE_SECONDS", "5"))
PROFILE_LINES = int(os.environ.get("BENCH_PROFILE_LINES", "15"))
PROFILE_SORT = os.environ.get("BENCH_PROFILE_SORT", "tottime")  # or cumtime
# Requests to send at most; GETs repeat, so the list holds the same few objects many times.
REQUESTS = 400_000
THROUGHPUT_TARGET = 0.5
P99_TARGET_MS = 25.0


def _get(path: str, authorization: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\r\n"
    ).encode("latin-1")


def _customers_and_admin_key() -> tuple[list[tuple[str, str]], str]:
    """(customer id, license JWT) of new customers, and an admin API key."""
    from core.api_keys import create_api_key
    from core.customers.service import create_customer, customer_detail
    from core.db import session_scope

    made = []
    with session_scope() as session:
        for number in range(CUSTOMERS):
            customer = create_customer(
                session, email=f"checkin{number}@example.com", company_name=f"Bench {number}"
            )
            license_row = customer_detail(session, customer.customer_id).license
            assert license_row is not None
            made.append((customer.customer_id, license_row.token))
        admin_key = create_api_key(session, "bench").key
    return made, admin_key


def _repeat(distinct: list[bytes]) -> list[bytes]:
    return [distinct[number % len(distinct)] for number in range(REQUESTS)]


def _serve_and_load(command: list[str], requests: list[bytes], scratch: Path) -> dict[str, Any]:
    port = free_port()
    with running([*command, "--port", str(port), "--workers", "1"]):
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        return load(
            port, requests, scratch, concurrency=CONCURRENCY, duration=DURATION, warmup=WARMUP
        )


def _profile(requests: list[bytes], scratch: Path) -> str:
    """The real check-in under cProfile for PROFILE_SECONDS: its top functions by own time."""
    port = free_port()
    output = scratch / "checkin.prof"
    command = [sys.executable, "-m", "bench.checkin", "--serve-profiled", str(port), str(output)]
    with running(command) as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        result = load(
            port,
            requests,
            scratch,
            concurrency=CONCURRENCY,
            duration=PROFILE_SECONDS,
            warmup=WARMUP,
        )
        process.terminate()
        process.wait(timeout=30)
    text = io.StringIO()
    stats = pstats.Stats(str(output), stream=text)
    stats.strip_dirs().sort_stats(os.environ.get("BENCH_PROFILE_SORT", "tottime")).print_stats(
        PROFILE_LINES
    )
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    header = f"profile: {result['rps']:.0f} req/s under cProfile, top {PROFILE_LINES} functions"
    return "\n".join([header, *lines[start : start + PROFILE_LINES + 1]])


def main() -> None:
    with bench_environment(
        "checkin",
        # Load tests send far more than a client would: lift the per-client limits.
        RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT="1000000000",
        RATE_LIMIT_FAILED_AUTH_PER_CLIENT="1000000000",
    ) as env:
        customers, admin_key = _customers_and_admin_key()
        check_ins = _repeat(
            [_get("/api/licenses/current", f"Bearer {token}") for _, token in customers]
        )
        admin_reads = _repeat(
            [
                _get(f"/api/licenses/{customer_id}", f"Bearer {admin_key}")
                for customer_id, _ in customers
            ]
        )
        real = billing_command("api")
        bare = [sys.executable, "-m", "bench.checkin_bare"]
        old = baseline_command("api")
        print(
            f"load: {CONCURRENCY} keep-alive connections, {WARMUP:.0f} s warm-up + "
            f"{DURATION:.0f} s, generator in its own process; servers: 1 uvicorn process each; "
            f"{CUSTOMERS} licenses"
        )
        results: dict[str, dict[str, Any]] = {}
        servers = {"bare": bare, **({"old": old} if old else {}), "real": real}
        for kind, requests in (("check-in", check_ins), ("admin read", admin_reads)):
            for name, command in servers.items():
                results[f"{kind} {name}"] = _serve_and_load(command, requests, env.data_dir)

        rows = [
            (
                name,
                f"{result['rps']:.0f}",
                f"{result['p50_ms']:.1f}",
                f"{result['p99_ms']:.1f}",
                str(result["requests"]),
                ", ".join(f"{code}: {n}" for code, n in result["statuses"].items()),
            )
            for name, result in results.items()
        ]
        print_table(
            "License reads (requests answered in the measured window)",
            rows,
            ("endpoint", "req/s", "p50 ms", "p99 ms", "requests", "statuses"),
        )
        passed_all = True
        for kind in ("check-in", "admin read"):
            bare_r, real_r = results[f"{kind} bare"], results[f"{kind} real"]
            ratio = real_r["rps"] / bare_r["rps"]
            all_ok = set(real_r["statuses"]) == {"200"}
            passed = ratio >= THROUGHPUT_TARGET and real_r["p99_ms"] < P99_TARGET_MS and all_ok
            passed_all &= passed
            print(
                f"{kind}: real/bare throughput {ratio:.2f} (target >= {THROUGHPUT_TARGET}), "
                f"p99 {real_r['p99_ms']:.1f} ms at {real_r['rps']:.0f} req/s (target < "
                f"{P99_TARGET_MS:.0f} ms), all 200: {all_ok} -> {verdict(passed)}"
            )
        if old is not None:
            print(f"\nagainst the baseline at {os.environ['BENCH_BASELINE_ROOT']}:")
            for kind in ("check-in", "admin read"):
                bare_rps = results[f"{kind} bare"]["rps"]
                print(f"{kind}: old p99 {results[f'{kind} old']['p99_ms']:.1f} ms")
                passed_all &= compare_to_baseline(
                    kind,
                    results[f"{kind} real"]["rps"] / bare_rps,
                    results[f"{kind} real"]["p99_ms"],
                    results[f"{kind} old"]["rps"] / bare_rps,
                )
        print_verdict("checkin", "see above", "real >= 0.5 x bare, p99 < 25 ms", passed_all)
        if PROFILE_SECONDS > 0:
            print()
            print(_profile(check_ins, env.data_dir))


_profiler = cProfile.Profile()


async def profiled_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`api.app:app`, profiled from its first request on (start-up and imports left out)."""
    from api.app import app

    if scope["type"] == "http" and scope["path"] != "/healthz":
        _profiler.enable()  # idempotent; the event loop thread is the one that serves
    await app(scope, receive, send)


def _serve_profiled(port: int, output: Path) -> None:
    """`billing api` (one process) under cProfile, the profile written when SIGTERM stops it."""
    import bench.checkin  # the module uvicorn imports, not this __main__
    from cli.processes import serve

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    # uvicorn hands SIGTERM back to the handler it found once it has shut down: this one.
    signal.signal(signal.SIGTERM, stop)
    try:
        serve("bench.checkin:profiled_app", host="127.0.0.1", port=port, workers=1)
    finally:
        bench.checkin._profiler.disable()
        bench.checkin._profiler.dump_stats(output)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-profiled"]:
        _serve_profiled(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
