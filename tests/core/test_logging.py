"""Log lines are JSON with the request id and never contain a secret."""

from __future__ import annotations

import json
import logging
import subprocess

import httpx

from core.logging import JsonFormatter, redact, request_id_var
from tests.helpers.processes import (
    PROJECT_ROOT,
    billing_command,
    free_port,
    stop_process,
    wait_for_http,
)

SECRETS = [
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJzdWIiOiJjdXN0XzEifQ.c2lnbmF0dXJlLWJ5dGVz",
    "zbk_A3Rid4PmwvMVcpEdVCBcSw80UmVa1ItH4ZFeVJw0BKA",
    "sk_live_51HabcdefGHIJKLmnop",
    "whsec_1234567890abcdef",
]


def test_redact_removes_every_kind_of_secret() -> None:
    for secret in SECRETS:
        line = redact(f"got {secret} from a caller")
        assert secret not in line
        assert "[redacted]" in line
    assert redact("Authorization: Bearer abc.def") == "Authorization: [redacted]"
    # Glued to another secret's characters, no part of a license token is left behind.
    for glued in (SECRETS[1] + SECRETS[0], "sk_live_abc" + SECRETS[0]):
        line = redact(f"got {glued}")
        assert ".eyJzdWIiOiJjdXN0XzEifQ" not in line and "c2lnbmF0dXJl" not in line, line


def test_json_lines_carry_the_request_id_and_redact_arguments() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (SECRETS[0],), None)
    token = request_id_var.set("req-42")
    try:
        entry = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert entry["request_id"] == "req-42"
    assert SECRETS[0] not in entry["message"]


def test_the_api_process_logs_json_without_the_callers_token(tmp_path) -> None:
    port = free_port()
    log_file = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        billing_command("api", "--port", str(port)),
        cwd=PROJECT_ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**__import__("os").environ, "LOG_JSON": "true", "LOG_LEVEL": "INFO"},
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        headers = {"Authorization": f"Bearer {SECRETS[0]}", "X-Request-ID": "trace-me-1"}
        httpx.get(f"http://127.0.0.1:{port}/api/customers", headers=headers)
    finally:
        stop_process(process)
        log_file.close()
    lines = (tmp_path / "api.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert entries, lines
    request_lines = [e for e in entries if e.get("request_id") == "trace-me-1"]
    assert request_lines and request_lines[0]["status"] == 401
    assert request_lines[0]["path"] == "/api/customers"
    assert all(secret not in "\n".join(lines) for secret in SECRETS)


def test_a_secret_in_a_repeated_short_field_is_redacted_every_time() -> None:
    # Short fields' redactions are remembered (the access log repeats them): never the secret.
    for _ in range(3):
        record = logging.LogRecord("api.access", logging.INFO, __file__, 1, "GET %s", (), None)
        record.args = (f"/api/licenses/{SECRETS[1]}",)
        record.path = f"/api/licenses/{SECRETS[1]}"
        line = JsonFormatter().format(record)
        assert SECRETS[1] not in line and line.count("[redacted]") == 2
