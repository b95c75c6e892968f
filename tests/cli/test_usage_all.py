"""`billing usage --all` prints the overview in one write: content, chart and coloured warnings."""

from __future__ import annotations

import os
import subprocess

from typer.testing import CliRunner

from cli.main import app
from tests.core.viewer.test_overview import seed_overview
from tests.helpers.processes import PROJECT_ROOT, billing_command

runner = CliRunner()


def test_all_prints_each_customer_with_its_chart_and_warnings() -> None:
    ids = seed_overview()
    result = runner.invoke(app, ["usage", "--all"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Found 3 customer(s)"
    busy = next(line for line in lines if ids["busy"] in line and "STARTER" in line)
    # Limit 10, 8 active of 24, 80%, 4 reports, no overage, bars 4 (two days ago) and 8 (today).
    assert busy.split()[-7:] == ["8", "24", "80.0%", "⚠", "4", "0", "▁▁▁▁▅▁█"]
    custom = next(line for line in lines if line.startswith("Custom Co"))
    assert custom.split()[-7:] == ["20", "10", "12", "50.0%", "1", "0", "▁▁▁▁▁▁█"]
    quiet = next(line for line in lines if line.startswith("Quiet"))
    assert quiet.split()[-5:] == ["0", "0.0%", "0", "0", "▁▁▁▁▁▁▁"]
    warned = lines.index("1 customer(s) at or above 80% of their device limit:")
    assert lines[warned + 1] == f"  {ids['busy']} (busy@example.com)"
    assert lines[warned + 2] == (
        "    ⚠️  WARNING: 80.0% of device limit used! Consider upgrading to a higher plan."
    )
    assert len(lines) == warned + 3


def test_warnings_keep_their_colour_on_a_colour_console() -> None:
    seed_overview()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "FORCE_COLOR": "1", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    result = subprocess.run(
        billing_command("usage", "--all"),
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b[1;33m⚠️  WARNING: 80.0% of device limit used!" in result.stdout
    # The table itself stays plain text, so it lines up in any terminal.
    table = [line for line in result.stdout.splitlines() if "STARTER" in line]
    assert table and "\x1b[" not in table[0]
