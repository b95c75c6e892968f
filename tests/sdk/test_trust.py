"""What the SDK trusts when the network lies: a forged service on 127.0.0.1, real RSA keys.

Only signatures are believed: a pinned key pins, time comes from a license's signed `iat`, a
revocation needs a signed license saying so, and a flood of unknown kids costs a bounded number
of key fetches.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from zemfyre_license import (
    UNLIMITED,
    InvalidLicenseError,
    JwksKeys,
    KeySetError,
    LicenseClient,
    LicenseRevokedError,
    Outcome,
    ServiceRefusedError,
    UnknownKeyError,
    verify_token,
)
from zemfyre_license.keys import REFETCH_COOLDOWN_SECONDS
from zemfyre_license.state import write_atomic

from tests.sdk.forged_service import ForgedService, SigningKey

CHECK_IN = "/api/licenses/current"
USAGE = "/api/usage/report"
JWKS = "/.well-known/jwks.json"
# What the service answers a revoked license, word for word: the words alone prove nothing.
REVOKED_401 = {
    "error": {
        "code": "unauthorized",
        "message": "license has been revoked; ask your provider for a new one",
    }
}


def test_a_pinned_key_trusts_no_key_the_jwks_url_offers(
    service_key: SigningKey, attacker_key: SigningKey, tmp_path: Path
) -> None:
    token = service_key.license(plan="trial", max_devices=5)
    enterprise = attacker_key.license(plan="enterprise", max_devices=UNLIMITED)
    state = tmp_path / "state"
    with ForgedService() as forged:
        forged.serve_jwks(attacker_key)
        forged.answer(CHECK_IN, 200, {"license": enterprise})
        client = LicenseClient(
            token, public_key=service_key.public_pem(), url=forged.url, state_dir=state
        )

        result = client.check_in()

        assert result.outcome is Outcome.REFUSED, result.message
        assert client.license is not None and client.license.plan == "trial"
        assert not client.license.allows_devices(6)
        with pytest.raises(InvalidLicenseError, match="signature"):
            client.keeper.verify(enterprise)
        assert forged.count(JWKS) == 0  # the pinned key is the whole key set
    assert not (state / "license.jwt").exists()
    restarted = LicenseClient(enterprise, public_key=service_key.public_pem(), state_dir=state)
    assert not restarted.verdict().allowed


@pytest.mark.parametrize("url", ["http://billing.example.com", "http://10.20.30.40:3100"])
def test_keys_are_never_fetched_over_plain_http_from_another_host(
    url: str, service_key: SigningKey, tmp_path: Path
) -> None:
    # Nothing is sent anywhere: the URLs are refused when the client is made.
    token = service_key.license()
    with pytest.raises(KeySetError, match="https"):
        JwksKeys(url=url + JWKS)
    with pytest.raises(KeySetError, match="https"):
        LicenseClient(token, url=url, state_dir=tmp_path / "a")
    with pytest.raises(KeySetError, match="https"):
        LicenseClient(token, jwks=url + JWKS, state_dir=tmp_path / "b")

    JwksKeys(url="https://billing.example.com" + JWKS)
    for local in ("http://127.0.0.1:3100", "http://localhost:3100", "http://[::1]:3100"):
        JwksKeys(url=local + JWKS)
    # With a pinned key no key set is fetched, so the service's URL may be anything.
    pinned = LicenseClient(token, public_key=service_key.public_pem(), url=url)
    assert pinned.verdict().allowed


def test_a_date_header_never_becomes_the_trusted_time(
    service_key: SigningKey, tmp_path: Path
) -> None:
    token = service_key.license()
    state = tmp_path / "state"
    with ForgedService() as forged:
        forged.date = "Fri, 01 Jan 2100 00:00:00 GMT"
        forged.serve_jwks(service_key)
        forged.answer(CHECK_IN, 200, {"license": token})
        forged.answer(USAGE, 202, {"status": "accepted", "reportId": 1})
        client = LicenseClient(token, url=forged.url, state_dir=state)

        assert client.check_in().outcome is Outcome.CURRENT
        client.report_usage("edge-1", active_devices=1, total_devices=1)

        verdict = client.verdict()
        assert verdict.allowed and not verdict.clock_set_back, verdict.reason
    license = client.license
    assert license is not None
    trusted = json.loads((state / "state.json").read_text())["trusted_time"]
    assert trusted == license.issued_at.timestamp()
    offline = LicenseClient(token, public_key=service_key.public_pem(), state_dir=state)
    assert offline.verdict().allowed, offline.verdict().reason


@pytest.mark.parametrize("proof", ["none", "attacker's", "another customer's"])
def test_an_unsigned_revocation_does_not_revoke_the_license(
    proof: str, service_key: SigningKey, attacker_key: SigningKey, tmp_path: Path
) -> None:
    token = service_key.license("cust_a", issued_at=time.time() - 3600)
    body: dict[str, object] = dict(REVOKED_401)
    if proof == "attacker's":
        body["license"] = attacker_key.license("cust_a", revoked=True, kid=service_key.kid)
    elif proof == "another customer's":
        body["license"] = service_key.license("cust_b", revoked=True)
    state = tmp_path / "state"
    with ForgedService() as forged:
        forged.serve_jwks(service_key)
        forged.answer(CHECK_IN, 401, body)
        forged.answer(USAGE, 401, body)
        client = LicenseClient(token, url=forged.url, state_dir=state)

        result = client.check_in()
        assert result.outcome is Outcome.REFUSED and not result.revoked, result.message
        assert "no signed license" in result.message or "not kept" in result.message
        assert result.verdict.allowed, result.verdict.reason
        # A usage report refused as revoked fails as a plain refusal, and that is all it does.
        with pytest.raises(ServiceRefusedError) as refused:
            client.report_usage("edge-1", active_devices=1, total_devices=1)
        assert refused.value.status == 401
        assert not isinstance(refused.value, LicenseRevokedError)
        assert client.verdict().allowed and not client.verdict().revoked

    restarted = LicenseClient(token, public_key=service_key.public_pem(), state_dir=state)
    assert restarted.verdict().allowed and not restarted.verdict().revoked


@pytest.mark.parametrize("revoked_after", [3600, 0], ids=["an hour later", "the same second"])
def test_a_signed_revocation_revokes_for_good(
    revoked_after: int, service_key: SigningKey, tmp_path: Path
) -> None:
    issued = int(time.time()) - revoked_after
    token = service_key.license("cust_a", issued_at=issued)
    revocation = service_key.license("cust_a", revoked=True, issued_at=issued + revoked_after)
    state = tmp_path / "state"
    with ForgedService() as forged:
        forged.serve_jwks(service_key)
        forged.answer(CHECK_IN, 401, {**REVOKED_401, "license": revocation})
        client = LicenseClient(token, url=forged.url, state_dir=state)

        result = client.check_in()

        assert result.outcome is Outcome.REVOKED and result.revoked, result.message
        assert not result.verdict.allowed and result.verdict.revoked
    restarted = LicenseClient(token, public_key=service_key.public_pem(), state_dir=state)
    assert restarted.verdict().revoked and not restarted.verdict().allowed


def test_a_license_handed_over_after_a_revocation_in_the_same_second_checks_in(
    service_key: SigningKey, tmp_path: Path
) -> None:
    # Revoked, then reinstated within a second: the revocation and the new license carry the
    # same iat. The instance holds the revocation; the operator configures the new license.
    issued = int(time.time())
    revocation = service_key.license("cust_a", revoked=True, issued_at=issued)
    reinstated = service_key.license("cust_a", issued_at=issued)
    state = tmp_path / "state"
    write_atomic(state / "license.jwt", revocation.encode())
    with ForgedService() as forged:
        forged.serve_jwks(service_key)
        forged.answer(CHECK_IN, 200, {"license": reinstated})
        client = LicenseClient(reinstated, url=forged.url, state_dir=state)

        result = client.check_in()

        assert forged.presented[-1] == reinstated  # never the revoked one, refused for good
        assert result.outcome is Outcome.CURRENT and result.verdict.allowed, result.message
    assert (state / "license.jwt").read_text().strip() == reinstated


def test_unknown_kids_refetch_the_key_set_at_most_once_per_cooldown(
    service_key: SigningKey, attacker_key: SigningKey, tmp_path: Path
) -> None:
    now = [1_000.0]
    with ForgedService() as forged:
        forged.serve_jwks(service_key)
        keys = JwksKeys(
            url=forged.url + JWKS, cache_file=tmp_path / "jwks.json", monotonic=lambda: now[0]
        )
        assert verify_token(service_key.license(), keys).kid == service_key.kid
        assert forged.count(JWKS) == 1  # the first use loads the key set

        for n in range(200):
            forged_token = attacker_key.license(kid=f"unknown-{n}")
            with pytest.raises(UnknownKeyError, match="unknown key"):
                verify_token(forged_token, keys)
        assert forged.count(JWKS) == 2  # one refetch for 200 distinct unknown kids

        # After the cooldown a key rotated in meanwhile is still picked up, with one fetch.
        now[0] += REFETCH_COOLDOWN_SECONDS
        rotated = SigningKey("rotated-kid")
        forged.serve_jwks(service_key, rotated)
        assert verify_token(rotated.license(), keys).kid == "rotated-kid"
        assert forged.count(JWKS) == 3


def test_state_is_changed_only_under_its_lock(service_key: SigningKey, tmp_path: Path) -> None:
    # Another instance sharing the state directory holds the lock while it raises the trusted
    # time; this instance's check-in record waits for it, then keeps both changes.
    token = service_key.license()
    state = tmp_path / "state"
    client = LicenseClient(token, public_key=service_key.public_pem(), state_dir=state)
    license = client.license
    assert license is not None and client.verdict().allowed
    later = license.issued_at.timestamp() + 60

    with open(state / "state.lock", "a+") as other_instance:
        fcntl.flock(other_instance, fcntl.LOCK_EX)
        recording = threading.Thread(target=client.keeper.record_check_in, args=(license,))
        recording.start()
        recording.join(timeout=1.0)
        assert recording.is_alive(), "state.json was changed while another instance held its lock"
        data = json.loads((state / "state.json").read_text())
        write_atomic(state / "state.json", json.dumps({**data, "trusted_time": later}).encode())
        fcntl.flock(other_instance, fcntl.LOCK_UN)
    recording.join()

    data = json.loads((state / "state.json").read_text())
    assert data["trusted_time"] == later
    assert data["checked_in_jti"] == license.jti


def test_state_reaches_the_disk_file_and_directory(
    service_key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rename is durable only once the directory holding it is flushed too.
    flushed: list[Path] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        flushed.append(Path("<directory>") if stat.S_ISDIR(mode) else Path("<file>"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    state = tmp_path / "state"
    client = LicenseClient(
        service_key.license(), public_key=service_key.public_pem(), state_dir=state
    )
    assert client.verdict().allowed  # records the license's iat as the trusted time

    assert (state / "state.json").exists()
    assert flushed == [Path("<file>"), Path("<directory>")]
