"""`billing` starts cheaply: no command pays for Celery, Stripe, the web stack or the database
before it runs, and `billing --help` still lists every command (bench/usage_all.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.processes import PROJECT_ROOT, billing_command

# What start-up must not import: each costs 0.1-0.5 s and most commands never use it.
HEAVY = (
    "celery",
    "kombu",
    "stripe",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "pydantic_settings",
    "jwt",
    "cryptography",
    "redis",
    "httpx",
    "models",
    "core.settings",
    "workers.celery_app",
    "tasks",
    "rich.table",
)
COMMANDS = (
    "usage",
    "api",
    "worker",
    "beat",
    "flower",
    "dev",
    "db",
    "apikey",
    "tasks",
    "customer",
    "license",
    "keys",
    "stripe",
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "COLUMNS": "160"}
    return subprocess.run(
        list(args), env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )


def test_importing_the_cli_imports_no_heavy_dependency() -> None:
    probe = (
        "import json, sys; import cli.main; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    result = _run(sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_help_lists_every_command_without_importing_them() -> None:
    result = _run(*billing_command("--help"))
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f" {command} " in result.stdout, f"{command} missing from:\n{result.stdout}"
    group = _run(*billing_command("customer", "--help"))
    assert group.returncode == 0, group.stderr
    for command in ("add", "list", "show", "upgrade", "deactivate"):
        assert f" {command} " in group.stdout


def test_a_command_still_imports_what_it_needs_when_it_runs() -> None:
    """The lazy imports are really there: `db current` reaches the (migrated) test database."""
    result = _run(*billing_command("db", "current"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() not in ("", "base")


def test_the_cli_days_bounds_are_the_core_ones() -> None:
    from cli import usage
    from core.viewer.queries import DEFAULT_DAYS, MAX_DAYS

    assert (usage.DEFAULT_DAYS, usage.MAX_DAYS) == (
        DEFAULT_DAYS,
        MAX_DAYS,
    )
