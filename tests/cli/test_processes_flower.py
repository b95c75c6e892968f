"""`billing flower`: the queue monitor only answers to its basic-auth login."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers.processes import billing_command, free_port, running, wait_for_http


def test_flower_requires_its_login() -> None:
    port = free_port()
    env = {"FLOWER_BASIC_AUTH": "operator:s3cret-pass", "FLOWER_PORT": str(port)}
    with running(billing_command("flower"), env=env):
        url = f"http://127.0.0.1:{port}/"
        refused = wait_for_http(url, timeout=45, expect=401)
        assert "basic" in refused.headers.get("www-authenticate", "").lower()
        wrong = httpx.get(url, auth=("operator", "wrong"), timeout=10)
        assert wrong.status_code == 401
        allowed = httpx.get(url, auth=("operator", "s3cret-pass"), timeout=10)
        assert allowed.status_code == 200
        assert "Flower" in allowed.text


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, read from the kernel's table."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_flower_listens_on_localhost_and_keeps_its_login_off_the_command_line(
    tmp_path: Path,
) -> None:
    port = free_port()
    login_file = tmp_path / "flower-login"
    login_file.write_text("operator:file-secret-9f2\n")
    env = {
        "FLOWER_BASIC_AUTH_FILE": str(login_file),
        "FLOWER_BASIC_AUTH": "",
        "FLOWER_PORT": str(port),
        # What the compose file used to set for every service: Flower must not follow it.
        "HOST": "0.0.0.0",
    }
    with running(billing_command("flower"), env=env) as process:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url, timeout=45, expect=401)
        assert httpx.get(url, auth=("operator", "file-secret-9f2"), timeout=10).status_code == 200
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert b"file-secret-9f2" not in command_line
