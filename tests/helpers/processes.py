"""Real server processes for tests: started on a free loopback port, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, expect: int | None = None) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
            if expect is None or response.status_code == expect:
                return response
        except httpx.HTTPError as exc:
            last_error = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout}s ({last_error})")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def billing_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


@contextmanager
def running(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(PROJECT_ROOT)
    process = subprocess.Popen(args, env=full_env, cwd=cwd or PROJECT_ROOT)
    try:
        yield process
    finally:
        stop_process(process)


@contextmanager
def api_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """`billing api` as its own process; yields its base URL once it answers /healthz."""
    port = free_port()
    with running(billing_command("api", "--port", str(port)), env=env):
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz")
        yield url
