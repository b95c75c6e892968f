"""The `zemfyre-license` command, run as an instance's operator would: a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import pg_scalar
from tests.sdk.conftest import Service

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_REVOKED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


def _command() -> str:
    script = Path(sys.executable).with_name("zemfyre-license")
    found = str(script) if script.exists() else shutil.which("zemfyre-license")
    assert found, "zemfyre-license is not installed (pip install -e ./sdk/python)"
    return found


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The license variables of whoever runs the tests never leak into a command under test.
    environ = {
        k: v for k, v in os.environ.items() if k not in ("IOTISTIC_LICENSE_KEY", "LICENSE_JWT")
    }
    return subprocess.run(
        [_command(), *args], capture_output=True, text=True, timeout=120, check=False,
        env={**environ, **(env or {})},
    )  # fmt: skip


def _license_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / "license.jwt"
    path.write_text(token + "\n")
    return f"@{path}"


def test_verify_prints_the_license_and_exits_0_when_it_allows(
    service: Service, public_key_file: Path, tmp_path: Path
) -> None:
    customer_id, token = service.create_customer()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(service.jwks()))
    for keys in (
        ["--public-key", str(public_key_file)],
        ["--jwks", str(jwks_file)],
        ["--jwks", service.url + "/.well-known/jwks.json"],
    ):
        done = run("verify", "--license", _license_file(tmp_path, token), *keys)
        assert done.returncode == EXIT_OK, done.stderr
        printed = json.loads(done.stdout)
        assert printed["allowed"] is True and printed["license"]["customerId"] == customer_id
        assert printed["license"]["plan"] == "trial"
        assert printed["license"]["features"]["maxDevices"] == 5


def test_verify_refuses_with_the_reason(
    service: Service, public_key_file: Path, tmp_path: Path
) -> None:
    _, token = service.create_customer()
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(
        claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"
    )
    done = run(
        "verify", "--license", _license_file(tmp_path, forged), "--public-key", str(public_key_file)
    )
    assert done.returncode == EXIT_REFUSED and "license has no key id" in done.stderr

    license_arg = _license_file(tmp_path, token)
    wrong_issuer = run(
        "verify", "--license", license_arg, "--public-key", str(public_key_file),
        "--issuer", "other",
    )  # fmt: skip
    assert (
        wrong_issuer.returncode == EXIT_REFUSED and "not issued by 'other'" in wrong_issuer.stderr
    )

    no_keys = run("verify", "--license", license_arg)
    assert no_keys.returncode == EXIT_USAGE and "--public-key" in no_keys.stderr


def test_check_in_prints_the_newest_license_and_says_revoked(
    service: Service, tmp_path: Path, closed_url: str
) -> None:
    customer_id, token = service.create_customer()
    state = tmp_path / "state"
    license_arg = _license_file(tmp_path, token)
    service.change_plan(customer_id, "professional")
    done = run(
        "check-in", "--url", service.url, "--license", license_arg, "--state-dir", str(state)
    )
    assert done.returncode == EXIT_OK, done.stderr
    printed = json.loads(done.stdout)
    assert printed["outcome"] == "current" and printed["changed"] is True
    assert printed["license"]["plan"] == "professional"
    assert printed["token"] == (state / "license.jwt").read_text().strip()

    service.revoke(customer_id)
    revoked = run(
        "check-in", "--url", service.url, "--license", license_arg, "--state-dir", str(state)
    )
    assert revoked.returncode == EXIT_REVOKED
    assert "revoked" in revoked.stderr and json.loads(revoked.stdout)["outcome"] == "revoked"

    missing_key = run(
        "check-in", "--url", closed_url, "--license", license_arg,
        "--public-key", str(tmp_path / "missing.pem"),
    )  # fmt: skip
    assert missing_key.returncode == EXIT_REFUSED and "missing.pem" in missing_key.stderr


def test_check_in_says_unreachable(
    service: Service, public_key_file: Path, closed_url: str, tmp_path: Path
) -> None:
    _, token = service.create_customer()
    done = run(
        "check-in", "--url", closed_url, "--license", _license_file(tmp_path, token),
        "--attempts", "2",
        "--retry-delay", "0.01", "--public-key", str(public_key_file),
    )  # fmt: skip
    assert done.returncode == EXIT_UNREACHABLE, done.stderr
    assert "unreachable" in done.stderr
    printed = json.loads(done.stdout)
    assert printed["outcome"] == "unreachable" and printed["allowed"] is True  # last good one


def test_report_exits_0_when_accepted(service: Service, tmp_path: Path) -> None:
    customer_id, token = service.create_customer()
    done = run(
        "report", "--url", service.url, "--license", _license_file(tmp_path, token),
        "--instance-id", "edge-7", "--active", "4", "--total", "6",
    )  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    printed = json.loads(done.stdout)
    assert printed["status"] == "accepted" and printed["duplicate"] is False
    where = f"FROM usage_reports WHERE customer_id = '{customer_id}'"
    assert pg_scalar(f"SELECT count(*) {where} AND active_devices = 4 AND total_devices = 6") == 1

    refused = run(
        "report", "--url", service.url, "--instance-id", "edge-7", "--active", "7", "--total", "6",
        env={"IOTISTIC_LICENSE_KEY": token},
    )  # fmt: skip
    assert refused.returncode == EXIT_REFUSED and "cannot exceed" in refused.stderr


def test_a_license_on_the_command_line_is_refused_saying_how_to_pass_it(
    service: Service, public_key_file: Path
) -> None:
    """argv is readable by every user (ps) and kept in shell history: exit 2, nothing done."""
    customer_id, token = service.create_customer()
    for command in (
        ["verify", "--public-key", str(public_key_file)],
        ["check-in", "--url", service.url],
        ["report", "--url", service.url, "--instance-id", "e", "--active", "1", "--total", "1"],
        ["verify"],  # refused before any other argument is judged
    ):
        for given in (["--license", token], [f"--license={token}"]):
            done = run(*command, *given)
            assert done.returncode == EXIT_USAGE, (command, done.stderr)
            assert "command line" in done.stderr
            for way in ("--license @FILE", "--license-file FILE", "IOTISTIC_LICENSE_KEY"):
                assert way in done.stderr
            assert done.stdout == "" and token not in done.stderr
    assert pg_scalar(f"SELECT count(*) FROM usage_reports WHERE customer_id = '{customer_id}'") == 0


def test_the_license_comes_from_a_file_or_the_environment(
    service: Service, public_key_file: Path, tmp_path: Path
) -> None:
    customer_id, token = service.create_customer()
    path = tmp_path / "license.jwt"
    path.write_text(token + "\n")
    keys = ["--public-key", str(public_key_file)]
    for given, env in (
        (["--license-file", str(path)], None),
        (["--license", f"@{path}"], None),
        ([], {"IOTISTIC_LICENSE_KEY": token}),
        ([], {"LICENSE_JWT": token}),
        ([], {"IOTISTIC_LICENSE_KEY": f"@{path}"}),
    ):
        done = run("verify", *given, *keys, env=env)
        assert done.returncode == EXIT_OK, (given, env, done.stderr)
        assert json.loads(done.stdout)["license"]["customerId"] == customer_id

    both = run("verify", "--license", f"@{path}", "--license-file", str(path), *keys)
    assert both.returncode == EXIT_USAGE and "not allowed with" in both.stderr
    missing = run("verify", *keys)
    assert missing.returncode == EXIT_USAGE and "--license-file FILE" in missing.stderr
