"""A usage report refused as revoked: only a signed license saying so is a revocation.

A forged service on 127.0.0.1 answers the report; licenses are signed with real RSA keys.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from zemfyre_license import LicenseClient, LicenseRevokedError, ServiceRefusedError
from zemfyre_license.cli import EXIT_REFUSED, EXIT_REVOKED, main

from tests.sdk.forged_service import ForgedService, SigningKey

USAGE = "/api/usage/report"
REVOKED_401 = {"error": {"code": "unauthorized", "message": "license has been revoked"}}


def _report_by_cli(url: str, license_file: Path, state: Path, pem: Path) -> int:
    return main(
        [
            "report",
            "--url",
            url,
            "--license-file",
            str(license_file),
            "--public-key",
            str(pem),
            "--state-dir",
            str(state),
            "--instance-id",
            "edge-1",
            "--active",
            "1",
            "--total",
            "1",
            "--attempts",
            "1",
        ]
    )


def test_an_unsigned_revoked_usage_answer_is_a_plain_refusal_in_the_sdk_and_the_cli(
    service_key: SigningKey, tmp_path: Path
) -> None:
    token = service_key.license("cust_a")
    license_file = tmp_path / "license.jwt"
    license_file.write_text(token)
    pem = tmp_path / "key.pem"
    pem.write_text(service_key.public_pem())
    with ForgedService() as forged:
        forged.answer(USAGE, 401, REVOKED_401)
        client = LicenseClient(token, public_key=pem, url=forged.url, state_dir=tmp_path / "s")
        with pytest.raises(ServiceRefusedError) as refused:
            client.report_usage("edge-1", active_devices=1, total_devices=1)
        assert refused.value.status == 401
        assert not isinstance(refused.value, LicenseRevokedError)

        assert _report_by_cli(forged.url, license_file, tmp_path / "c", pem) == EXIT_REFUSED
    assert client.verdict().allowed


def test_a_signed_revocation_in_a_usage_answer_revokes(
    service_key: SigningKey, tmp_path: Path
) -> None:
    issued = int(time.time()) - 60
    token = service_key.license("cust_a", issued_at=issued)
    revocation = service_key.license("cust_a", revoked=True, issued_at=issued + 30)
    license_file = tmp_path / "license.jwt"
    license_file.write_text(token)
    pem = tmp_path / "key.pem"
    pem.write_text(service_key.public_pem())
    with ForgedService() as forged:
        forged.answer(USAGE, 401, {**REVOKED_401, "license": revocation})
        client = LicenseClient(token, public_key=pem, url=forged.url, state_dir=tmp_path / "s")
        with pytest.raises(LicenseRevokedError):
            client.report_usage("edge-1", active_devices=1, total_devices=1)
        assert client.verdict().revoked

        assert _report_by_cli(forged.url, license_file, tmp_path / "c", pem) == EXIT_REVOKED
