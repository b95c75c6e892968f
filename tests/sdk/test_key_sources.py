"""Where the SDK's keys come from when the network cannot be trusted for them: a plain-http
service URL refuses only the fetch; the shipped and cached key sets still verify. Real RSA keys;
a forged service on 127.0.0.1 where the network is asked at all."""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from pathlib import Path

import pytest
from zemfyre_license import JwksKeys, KeySetError, LicenseClient, Outcome, UnknownKeyError

from tests.sdk.forged_service import ForgedService, SigningKey

JWKS = "/.well-known/jwks.json"
CHECK_IN = "/api/licenses/current"
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


def test_a_key_fetch_while_adopting_a_license_does_not_hold_the_state_lock(
    service_key: SigningKey, tmp_path: Path
) -> None:
    # Another instance stored a license signed with a key this one does not know yet: checking
    # it refetches the key set. That fetch hangs; the state lock must be free meanwhile, or
    # every instance sharing the directory waits on the network for its verdict.
    rotated = SigningKey("rotated-kid")
    state = tmp_path / "state"
    state.mkdir()
    (state / "license.jwt").write_text(rotated.license())
    clock = iter(range(0, 10**9, 10**6))  # every refetch is past its cooldown
    with ForgedService() as forged:
        forged.serve_jwks(service_key)
        arrived, release = forged.hold(JWKS, after=2)
        keys = JwksKeys(
            url=forged.url + JWKS, cache_file=state / "jwks.json", monotonic=lambda: next(clock)
        )
        client = LicenseClient(
            service_key.license(issued_at=time.time() - 60), keys=keys, state_dir=state
        )
        handed_over = service_key.license()
        adopting = threading.Thread(target=client.keeper.adopt, args=(handed_over,))
        adopting.start()
        try:
            assert arrived.wait(timeout=30), "the stored license was never checked"
            with open(state / "state.lock", "a+") as other_instance:
                fcntl.flock(other_instance, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no raise
                fcntl.flock(other_instance, fcntl.LOCK_UN)
        finally:
            release.set()
            adopting.join()
    assert (state / "license.jwt").read_text().strip() == handed_over


def test_oversized_answers_are_not_read(service_key: SigningKey, tmp_path: Path) -> None:
    # A key set or a check-in answer padded to 1 MiB: a genuine key and license inside, but no
    # service sends that much; the instance reads no further and keeps what it had.
    token = service_key.license(issued_at=time.time() - 60)
    renewal = service_key.license()
    padding = "x" * (1024 * 1024)
    state = tmp_path / "state"
    with ForgedService() as forged:
        forged.answer(JWKS, 200, {"keys": [service_key.jwk()], "padding": padding})
        keys = JwksKeys(url=forged.url + JWKS, cache_file=state / "jwks.json")
        with pytest.raises(UnknownKeyError, match="at most"):
            keys.key_for(service_key.kid)
        assert not (state / "jwks.json").exists()

        forged.answer(CHECK_IN, 200, {"license": renewal, "padding": padding})
        client = LicenseClient(
            token,
            public_key=service_key.public_pem(),
            url=forged.url,
            state_dir=state,
            sleep=lambda _: None,
        )
        result = client.check_in()
        assert result.outcome is Outcome.UNREACHABLE, result.message
        assert client.license is not None and client.license.token == token
        assert result.verdict.allowed
