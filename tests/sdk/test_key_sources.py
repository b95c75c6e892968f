"""Where the SDK's keys come from when the network cannot be trusted for them: a plain-http
service URL refuses only the fetch; the shipped and cached key sets still verify. Real RSA keys;
a forged service on 127.0.0.1 where the network is asked at all."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from zemfyre_license import KeySetError, LicenseClient

from tests.sdk.forged_service import SigningKey

REMOTE_HTTP = "http://billing.example.com"  # never contacted: its keys would not be believed


def _jwks(key: SigningKey) -> bytes:
    return json.dumps({"keys": [key.jwk()]}).encode()


@pytest.mark.parametrize("kept", ["cached", "shipped"])
def test_a_plain_http_url_refuses_only_the_fetch(
    kept: str, service_key: SigningKey, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shipped = tmp_path / "jwks.json"
    (state / "jwks.json" if kept == "cached" else shipped).write_bytes(_jwks(service_key))
    jwks = shipped if kept == "shipped" else None

    with caplog.at_level(logging.WARNING, logger="zemfyre_license"):
        client = LicenseClient(service_key.license(), url=REMOTE_HTTP, jwks=jwks, state_dir=state)
    verdict = client.verdict()

    assert verdict.allowed, verdict.reason
    assert "https" in caplog.text
    # With nothing shipped or cached, nothing could verify: refused when the client is made.
    with pytest.raises(KeySetError, match="https"):
        LicenseClient(service_key.license(), url=REMOTE_HTTP, state_dir=tmp_path / "empty")
