"""`billing dev` on a bare folder: embedded SQLite, keys and schema made on first run."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.helpers.processes import (
    PROJECT_ROOT,
    billing_command,
    free_port,
    stop_process,
    wait_for_http,
)

PROJECT_SETTINGS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_KEY_PREFIX",
    "LICENSE_PRIVATE_KEY_PATH",
    "LICENSE_PUBLIC_KEY_PATH",
    "DATA_DIR",
)


def _bare_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_SETTINGS}
    env.update(PORT=str(port), PYTHONPATH=str(PROJECT_ROOT), CLI_TASK_TIMEOUT_SECONDS="60")
    return env


def test_dev_serves_on_the_embedded_default_and_runs_tasks(tmp_path: Path) -> None:
    port = free_port()
    env = _bare_env(port)
    dev = subprocess.Popen(billing_command("dev"), cwd=tmp_path, env=env, start_new_session=True)
    try:
        ready = wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout=60, expect=200)
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        assert (tmp_path / "data" / "billing.db").exists()
        assert (tmp_path / "keys" / "private-key.pem").stat().st_mode & 0o077 == 0

        ping = subprocess.run(
            billing_command("tasks", "ping"),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "pong from worker" in ping.stdout
    finally:
        dev.send_signal(signal.SIGTERM)
        stop_process(dev, timeout=30)
    assert dev.returncode == 0
    # Every child went with it: nothing is left in dev's process group.
    leftover = subprocess.run(["pgrep", "-g", str(dev.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
