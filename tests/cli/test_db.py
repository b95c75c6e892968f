"""`billing db` on a fresh folder, and what the CLI says when the schema is missing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from tests.cli.test_processes_dev import PROJECT_SETTINGS
from tests.helpers.processes import PROJECT_ROOT, billing_command


def _billing(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_SETTINGS}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        billing_command(*args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_upgrade_creates_the_embedded_database_and_downgrade_empties_it(tmp_path: Path) -> None:
    before = _billing(tmp_path, "customer", "list")
    assert before.returncode == 1
    assert "run `billing db upgrade`" in before.stderr
    assert "Traceback" not in before.stderr

    upgraded = _billing(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "billing.db").exists()
    assert _billing(tmp_path, "db", "current").stdout.strip() != "base"
    assert "Found 0 customer(s)" in _billing(tmp_path, "customer", "list").stdout

    downgraded = _billing(tmp_path, "db", "downgrade", "base", "--yes")
    assert downgraded.returncode == 0, downgraded.stderr
    assert _billing(tmp_path, "db", "current").stdout.strip() == "base"


def _customers(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "data" / "billing.db") as connection:
        return connection.execute("SELECT count(*) FROM customers").fetchone()[0]


def _add_customer(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "data" / "billing.db") as connection:
        connection.execute(
            "INSERT INTO customers (customer_id, email, usage_threshold_percent, created_at, "
            "updated_at) VALUES ('cust_keep', 'keep@example.com', 0, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00')"
        )


def _answering(tmp_path: Path, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_SETTINGS}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        billing_command(*args),
        cwd=tmp_path,
        env=env,
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_downgrade_without_a_revision_never_empties_the_database(tmp_path: Path) -> None:
    # The reproduced loss: a database at the first migration, `billing db downgrade`, "at base".
    assert _billing(tmp_path, "db", "upgrade", "0001").returncode == 0
    _add_customer(tmp_path)

    for answer in ("y\n", ""):
        refused = _answering(tmp_path, answer, "db", "downgrade")
        assert refused.returncode == 1, refused.stdout
        assert "drops every table" in refused.stderr
        assert _billing(tmp_path, "db", "current").stdout.strip() == "0001"
        assert _customers(tmp_path) == 1


def test_a_destructive_downgrade_says_what_it_drops_and_asks(tmp_path: Path) -> None:
    assert _billing(tmp_path, "db", "upgrade").returncode == 0
    _add_customer(tmp_path)
    applied = _billing(tmp_path, "db", "current").stdout.strip()

    declined = _answering(tmp_path, "n\n", "db", "downgrade", "base")
    assert declined.returncode == 1
    assert "table customers (1 rows)" in declined.stderr
    assert "table licenses (0 rows)" in declined.stderr
    assert "nothing was changed" in declined.stderr
    assert _billing(tmp_path, "db", "current").stdout.strip() == applied

    no_terminal = _answering(tmp_path, "", "db", "downgrade", "base")
    assert no_terminal.returncode == 1
    assert _customers(tmp_path) == 1

    confirmed = _answering(tmp_path, "y\n", "db", "downgrade", "base")
    assert confirmed.returncode == 0, confirmed.stderr
    assert _billing(tmp_path, "db", "current").stdout.strip() == "base"


def _billing_with(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_SETTINGS}
    env.update(PYTHONPATH=str(PROJECT_ROOT), DATABASE_URL=database_url)
    return subprocess.run(
        billing_command(*args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_plain_postgresql_and_postgres_urls_work_with_the_installed_driver(tmp_path: Path) -> None:
    """PaaS providers hand out postgres://…; SQLAlchemy 2.1 would pick psycopg 3 for them."""
    from tests.conftest import TEST_DATABASE_URL

    plain = TEST_DATABASE_URL.replace("postgresql+psycopg2://", "postgresql://", 1)
    heroku_style = TEST_DATABASE_URL.replace("postgresql+psycopg2://", "postgres://", 1)
    for url in (plain, heroku_style):
        current = _billing_with(tmp_path, url, "db", "current")
        assert current.returncode == 0, current.stderr
        assert current.stdout.strip() not in ("", "base")
        listed = _billing_with(tmp_path, url, "customer", "list")
        assert listed.returncode == 0, listed.stderr
        assert "customer(s)" in listed.stdout


def test_an_unusable_database_url_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    for url in ("mysql://billing:hunter2@db/billing", "not a url", "oracle+nosuch://x@y/z"):
        for command in (("db", "upgrade"), ("customer", "list"), ("api",), ("worker",)):
            result = _billing_with(tmp_path, url, *command)
            assert result.returncode == 1, (url, command, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, (url, command, result.stderr)
            assert "DATABASE_URL" in lines[0]
            assert "hunter2" not in result.stderr  # the password is never printed
