"""The long-running processes: api, worker, beat, flower, and `dev` which runs three at once."""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, fail
from workers.queues import ALL_QUEUES  # plain names: cheap, and `--help` shows the default

if TYPE_CHECKING:
    from core.settings import Settings

STOP_GRACE_SECONDS = 10


def _settings() -> Settings:
    # Imported when a process starts, not when any `billing` command starts (pydantic-settings).
    from core.settings import get_settings

    return get_settings()


def api(
    host: str = typer.Option(None, help="Address to bind (default: HOST)"),
    port: int = typer.Option(None, help="Port (default: PORT, 3100)"),
    workers: int = typer.Option(1, help="Uvicorn worker processes"),
) -> None:
    """Run the HTTP API."""
    serve("api.app:app", host=host, port=port, workers=workers)


def http_protocol_path() -> str:
    """The HTTP protocol uvicorn serves with, by its import path (uvicorn imports it; the CLI
    imports nothing of api/): httptools (C, from uvicorn[standard]) when installed, the
    pure-Python h11 otherwise."""
    if importlib.util.find_spec("httptools") is None:
        return "api.http_protocol:NoDelayH11Protocol"
    return "api.http_protocol_httptools:NoDelayHttpToolsProtocol"


def serve(app: str, *, host: str | None, port: int | None, workers: int) -> None:
    """Uvicorn as `billing api` runs it (bench/ serves its bare comparison app the same way)."""
    import uvicorn

    from core.db import check_database_url
    from core.logging import configure_logging

    settings = _settings()
    # An unusable DATABASE_URL stops the start with one line, not on the first request.
    check_database_url(settings)
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
        # X-Forwarded-For names the client (the rate limits' key) only from these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # TCP_NODELAY on every connection (see api/http_protocol.py for the 40 ms it saves), and
        # bounded requests (api/http_protocol_httptools.py).
        http=http_protocol_path(),
        # The pure-Python fallback's own bound on a request's head.
        h11_max_incomplete_event_size=settings.max_request_header_bytes,
        # Beyond this many connections and requests in progress, a 503 rather than a stall.
        limit_concurrency=settings.api_limit_concurrency,
    )


def worker(
    queues: str = typer.Option(",".join(ALL_QUEUES), "--queues", "-Q", help="Queues to consume"),
    concurrency: int = typer.Option(None, "--concurrency", "-c", help="Worker processes"),
    pool: str = typer.Option("prefork", help="prefork, threads or solo"),
) -> None:
    """Run a Celery worker."""
    from core.db import check_database_url
    from workers.celery_app import celery_app

    settings = _settings()
    check_database_url(settings)
    celery_app.worker_main(
        [
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency or settings.worker_concurrency),
            "--pool",
            pool,
            "--loglevel",
            settings.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def beat() -> None:
    """Run celery beat, the scheduler of the periodic jobs."""
    from core.db import check_database_url
    from workers.celery_app import celery_app

    settings = _settings()
    check_database_url(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        [
            "beat",
            "--schedule",
            str(settings.data_dir / "celerybeat-schedule"),
            "--loglevel",
            settings.log_level,
        ]
    )


def flower(port: int = typer.Option(None, help="Port (default: FLOWER_PORT, 5555)")) -> None:
    """Run Flower, the queue monitor, behind basic authentication, on FLOWER_ADDRESS
    (127.0.0.1 unless set: publish it through a TLS proxy or an SSH tunnel)."""
    from workers.celery_app import celery_app

    settings = _settings()
    basic_auth = _flower_login(settings)
    # Flower reads its options from FLOWER_* variables too: the login goes there, never into an
    # argument list that `ps` or /proc/<pid>/cmdline would show.
    os.environ["FLOWER_BASIC_AUTH"] = basic_auth
    celery_app.start(
        ["flower", f"--port={port or settings.flower_port}", f"--address={settings.flower_address}"]
    )


def _flower_login(settings: Settings) -> str:
    if settings.flower_basic_auth_file:
        path = Path(settings.flower_basic_auth_file)
        try:
            login = path.read_text().strip()
        except OSError as exc:
            raise fail(f"FLOWER_BASIC_AUTH_FILE {path} cannot be read: {exc.strerror}") from exc
        if ":" not in login:
            raise fail(f"FLOWER_BASIC_AUTH_FILE {path} must hold user:password")
        return login
    if settings.flower_basic_auth:
        return settings.flower_basic_auth
    login = f"admin:{secrets.token_urlsafe(12)}"
    # Shown once on the operator's terminal (like a new API key), never logged.
    console.print(f"FLOWER_BASIC_AUTH is not set; this run's login is {login}")
    return login


def _prepare_embedded_default() -> None:
    """First run on a bare machine: data folder, key pair and schema."""
    from core import migrations
    from core.licensing.keys import ensure_key_pair

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    kid = ensure_key_pair(settings)
    console.print(f"🔑 signing key {kid} ({settings.license_private_key_path})")
    migrations.upgrade()
    console.print("🗄  database migrated")


def _spawn(command: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", command, *extra])


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def dev() -> None:
    """Run api + worker + beat together in the foreground (embedded SQLite default)."""
    settings = _settings()
    try:
        _prepare_embedded_default()
    except Exception as exc:  # noqa: BLE001 - say what failed, then stop
        raise fail(f"set-up failed: {exc}") from exc
    database = "embedded SQLite" if settings.database_url is None else "DATABASE_URL"
    broker = "embedded SQLite broker" if settings.celery_broker_url is None else "CELERY_BROKER_URL"
    console.print(f"🗄  database: {database}; broker: {broker}")

    children = [_spawn("api"), _spawn("worker", "--pool", "threads"), _spawn("beat")]
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    console.print(
        f"🚀 Zemfyre Billing on http://{settings.host}:{settings.port} "
        f"(docs at /docs, readiness at /readyz); Ctrl-C stops api, worker and beat"
    )
    exit_code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                console.print(f"a child process exited ({child.args[3]}); stopping the others")
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.3)
    _stop_all(children)
    console.print("stopped")
    os._exit(exit_code)
