"""`billing db` on a fresh folder, and what the CLI says when the schema is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cli.test_dev import PROJECT_SETTINGS
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

    downgraded = _billing(tmp_path, "db", "downgrade", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    assert _billing(tmp_path, "db", "current").stdout.strip() == "base"
