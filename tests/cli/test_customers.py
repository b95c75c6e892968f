"""`billing customer add|list|show`: in-process, the same service calls as the API."""

from __future__ import annotations

import signal
import subprocess

import httpx
import jwt
from typer.testing import CliRunner

from cli.main import app
from core.licensing.keys import load_signing_key
from core.settings import get_settings
from tests.cli.test_processes_dev import _bare_env
from tests.conftest import pg_scalar
from tests.helpers.processes import billing_command, free_port, stop_process, wait_for_http

runner = CliRunner()


def _add(*extra: str):
    return runner.invoke(
        app,
        ["customer", "add", "--email", "cli@acme.example", "--name", "Cli User", *extra],
    )


def test_add_prints_the_customer_its_trial_license_and_env_lines() -> None:
    result = _add("--company", "Cli Inc")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "✅ Customer created successfully!" in lines
    customer_id = next(line for line in lines if line.startswith("ID:")).split()[-1]
    assert customer_id.startswith("cust_")
    assert "Company:          Cli Inc" in lines
    token = next(line for line in lines if line.startswith("LICENSE_JWT=")).split("=", 1)[1]
    assert f"CUSTOMER_ID={customer_id}" in lines
    assert token in lines  # printed whole on its own line, never wrapped
    claims = jwt.decode(token, load_signing_key(get_settings()).public_pem, algorithms=["RS256"])
    assert claims["customerId"] == customer_id and claims["trial"]["isTrialMode"] is True
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{customer_id}'") == 1

    listing = runner.invoke(app, ["customer", "list"])
    assert listing.exit_code == 0
    assert "Found 1 customer(s):" in listing.output
    row = next(line for line in listing.output.splitlines() if line.startswith(customer_id))
    assert "cli@acme.example" in row and "Cli User" in row and "Cli Inc" in row

    shown = runner.invoke(app, ["customer", "show", customer_id])
    assert shown.exit_code == 0
    assert "TRIALING" in shown.output and "cli@acme.example" in shown.output


def test_add_twice_in_another_case_fails_clearly() -> None:
    assert _add().exit_code == 0
    again = runner.invoke(app, ["customer", "add", "--email", "CLI@ACME.EXAMPLE"])
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert pg_scalar("SELECT count(*) FROM customers") == 1


def test_add_and_revoke_need_no_broker_or_worker() -> None:
    """The CLI writes in-process: with the broker unreachable, nothing is waiting on a worker."""
    import os

    from tests.helpers.processes import PROJECT_ROOT

    env = {
        **os.environ,
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:1/0",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    added = subprocess.run(
        billing_command("customer", "add", "--email", "nobroker@acme.example"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    customer_id = next(
        line.split("=", 1)[1]
        for line in added.stdout.splitlines()
        if line.startswith("CUSTOMER_ID=")
    )
    revoked = subprocess.run(
        billing_command("license", "revoke", customer_id),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoked.returncode == 0, revoked.stderr
    assert pg_scalar(f"SELECT count(*) FROM licenses WHERE customer_id = '{customer_id}'") == 2


def test_bad_email_and_plan_fail_before_any_task() -> None:
    bad = runner.invoke(app, ["customer", "add", "--email", "nope"])
    assert bad.exit_code == 1 and "email" in bad.output
    plan = runner.invoke(app, ["customer", "add", "--email", "a@acme.example", "--plan", "gold"])
    assert plan.exit_code == 1 and "unknown plan" in plan.output


def test_show_unknown_customer() -> None:
    result = runner.invoke(app, ["customer", "show", "cust_missing"])
    assert result.exit_code == 1
    assert "no customer" in result.output


def test_customer_and_license_commands_against_a_running_billing_dev(tmp_path) -> None:
    """The operator's path on a bare machine: `billing dev`, then the CLI in another shell."""
    port = free_port()
    env = _bare_env(port)
    dev = subprocess.Popen(billing_command("dev"), cwd=tmp_path, env=env, start_new_session=True)

    def billing(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            billing_command(*args),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout=60, expect=200)
        added = billing(
            "customer", "add", "--email", "dev@acme.example", "--name", "Dev", "--company", "Dev Co"
        )
        assert added.returncode == 0, added.stdout + added.stderr
        lines = added.stdout.splitlines()
        customer_id = next(line for line in lines if line.startswith("CUSTOMER_ID=")).split("=")[1]
        token = next(line for line in lines if line.startswith("LICENSE_JWT=")).split("=", 1)[1]

        listed = billing("customer", "list")
        assert customer_id in listed.stdout and "Found 1 customer(s):" in listed.stdout
        shown = billing("license", "show", customer_id)
        assert shown.returncode == 0 and token in shown.stdout.splitlines()
        verified = billing("license", "verify", token, "--public-key", "keys/public-key.pem")
        assert verified.returncode == 0, verified.stdout + verified.stderr

        revoked = billing("license", "revoke", customer_id, "--reason", "test")
        assert revoked.returncode == 0, revoked.stdout + revoked.stderr
        check_in = httpx.get(
            f"http://127.0.0.1:{port}/api/licenses/current",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert check_in.status_code == 401
        reinstated = billing("license", "reinstate", customer_id)
        assert reinstated.returncode == 0, reinstated.stdout + reinstated.stderr
    finally:
        dev.send_signal(signal.SIGTERM)
        stop_process(dev, timeout=30)
