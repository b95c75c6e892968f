"""Real processes for fault tests: a Redis of the test's own, and api/worker/beat subprocesses.

Every process is started on 127.0.0.1 and stopped on the way out (context managers), and each
writes its output to a log file whose tail is shown when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import redis

from tests.helpers.processes import (
    PROJECT_ROOT,
    billing_command,
    free_port,
    stop_process,
    wait_for_http,
)
from tests.helpers.waiting import wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A redis-server of the test's own, without persistence: stopping it loses what it held,
    the harshest case for the ingress (a 2xx must not depend on anything Redis kept)."""

    def __init__(self, workdir: Path, *, on_disk: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        # On disk: what it held is saved when it stops and loaded when it starts again, as a
        # production Redis with persistence does.
        self.on_disk = on_disk
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - kept open
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "3600 1" if self.on_disk else "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_until(lambda: _pings(client), timeout=10, interval=0.05)
        client.close()
        self.starts += 1
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=5)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def service_env(redis_url: str, **settings: str) -> dict[str, str]:
    """Settings for subprocesses: the per-run test database (inherited), this test's Redis and a
    key prefix of its own, plain-text logs, plus `settings` (SETTING_NAME="value")."""
    return {
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_KEY_PREFIX": f"fault-{uuid.uuid4().hex[:8]}:",
        "LOG_JSON": "false",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        # Tests read the workers' logs as they happen (which worker took a task).
        "PYTHONUNBUFFERED": "1",
        **settings,
    }


class Services:
    """api, worker and beat subprocesses of one test, each logging to its own file."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self._stack = ExitStack()
        self.logs: dict[str, Path] = {}

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{name}.log"
        self.logs[name] = log_path
        log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed with the stack
        self._stack.callback(log.close)
        full_env = {**os.environ, **self.env, **env, "PYTHONPATH": str(PROJECT_ROOT)}
        process = subprocess.Popen(
            args, env=full_env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self._stack.callback(stop_process, process, 15.0)
        return process

    def api(self, name: str = "api", **env: str) -> str:
        port = free_port()
        self._spawn(name, billing_command("api", "--port", str(port)), env)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", timeout=30)
        return url

    def worker(self, name: str = "worker", **env: str) -> subprocess.Popen[bytes]:
        return self._spawn(
            name, billing_command("worker", "--pool", "solo", "--concurrency", "1"), env
        )

    def beat(self, name: str = "beat", **env: str) -> subprocess.Popen[bytes]:
        data_dir = Path(tempfile.mkdtemp(prefix="beat-", dir=self.workdir))
        return self._spawn(name, billing_command("beat"), {"DATA_DIR": str(data_dir), **env})

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"--- {name} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def close(self) -> None:
        self._stack.close()


@contextmanager
def services(env: dict[str, str], workdir: Path) -> Iterator[Services]:
    running = Services(env, workdir)
    try:
        yield running
    except BaseException:
        print(running.log_tail())  # shown by pytest with the failure
        raise
    finally:
        running.close()


def wait_for_workers(running: Services, names: list[str], timeout: float = 60.0) -> None:
    """Until each named worker has logged that it is ready (connected and consuming)."""

    def ready() -> bool:
        return all(
            "ready." in running.logs[name].read_text(errors="replace")
            for name in names
            if running.logs[name].exists()
        ) and all(running.logs[name].exists() for name in names)

    wait_until(ready, timeout=timeout, interval=0.2)


def kill(process: subprocess.Popen[bytes] | int) -> None:
    pid = process if isinstance(process, int) else process.pid
    os.kill(pid, signal.SIGKILL)
    if not isinstance(process, int):
        process.wait(timeout=10)


def post(client: httpx.Client, url: str, **kwargs: Any) -> tuple[int, Any, float]:
    """POST and return (status, JSON body or None, seconds); a connection error counts as 0."""
    started = time.monotonic()
    try:
        response = client.post(url, **kwargs)
    except httpx.HTTPError:
        return 0, None, time.monotonic() - started
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, body, time.monotonic() - started
