"""`billing flower`: the queue monitor only answers to its basic-auth login."""

from __future__ import annotations

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
