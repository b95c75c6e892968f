"""`billing tasks ping` and `billing tasks status` against the real broker and worker."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_ping_runs_on_a_worker_and_status_shows_the_task(celery_worker) -> None:
    from tasks.maintenance import ping

    pinged = runner.invoke(app, ["tasks", "ping"])
    assert pinged.exit_code == 0, pinged.output
    assert "pong from worker" in pinged.output

    result = ping.apply_async()
    result.get(timeout=20)
    status = runner.invoke(app, ["tasks", "status", result.id])
    assert status.exit_code == 0, status.output
    assert "SUCCESS" in status.output
    assert "pong" in status.output

    unknown = runner.invoke(app, ["tasks", "status", "no-such-task"])
    assert "PENDING" in unknown.output
