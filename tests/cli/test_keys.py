"""`billing keys generate|rotate|show` on a key folder of its own."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

from tests.helpers.processes import PROJECT_ROOT, billing_command


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "LICENSE_PRIVATE_KEY_PATH": str(tmp_path / "keys" / "private-key.pem"),
        "LICENSE_PUBLIC_KEY_PATH": str(tmp_path / "keys" / "public-key.pem"),
        # Rotation enqueues a reissue; a dead broker must only produce a warning.
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "ENQUEUE_TIMEOUT_SECONDS": "0.5",
        **env,
    }
    return subprocess.run(
        billing_command(*args),
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generate_writes_a_0600_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = _run(tmp_path, "keys", "generate")
    assert first.returncode == 0, first.stderr
    private = tmp_path / "keys" / "private-key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "public-key.pem").read_text().startswith("-----BEGIN PUBLIC KEY")
    original = private.read_bytes()

    again = _run(tmp_path, "keys", "generate")
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
    assert private.read_bytes() == original

    forced = _run(tmp_path, "keys", "generate", "--force")
    assert forced.returncode == 0
    assert private.read_bytes() != original


def test_rotate_keeps_the_old_public_key_published(tmp_path: Path) -> None:
    assert _run(tmp_path, "keys", "generate").returncode == 0
    before = _run(tmp_path, "keys", "show").stdout.split()[0]
    rotated = _run(tmp_path, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert before in rotated.stdout and "could not reach the broker" in rotated.stdout
    shown = _run(tmp_path, "keys", "show").stdout.splitlines()
    assert len(shown) == 2
    assert shown[0].endswith("active") and not shown[0].startswith(before)
    assert shown[1].startswith(before) and "retired" in shown[1]


def test_key_from_the_environment_is_used_and_files_are_not_touched(tmp_path: Path) -> None:
    assert _run(tmp_path, "keys", "generate").returncode == 0
    pem = (tmp_path / "keys" / "private-key.pem").read_text()
    kid = _run(tmp_path, "keys", "show").stdout.split()[0]
    other = tmp_path / "other"
    other.mkdir()
    for value in (pem, base64.b64encode(pem.encode()).decode()):
        shown = _run(other, "keys", "show", LICENSE_PRIVATE_KEY=value)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.split()[0] == kid
        refused = _run(other, "keys", "rotate", LICENSE_PRIVATE_KEY=value)
        assert refused.returncode == 1 and "LICENSE_PRIVATE_KEY" in refused.stderr
