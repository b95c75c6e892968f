"""A pinned key trusts a new key only when it (through a chain) signed it: a forged service on
127.0.0.1 serves endorsements; real RSA keys."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
from zemfyre_license import LicenseClient, Outcome

from tests.sdk.forged_service import ForgedService, SigningKey

CHECK_IN = "/api/licenses/current"
ENDORSEMENTS = "/.well-known/jwks-endorsements.json"


def _endorse(signer: SigningKey, endorsed: SigningKey) -> str:
    payload = {"keys": [endorsed.jwk()], "iat": int(time.time())}
    return jwt.encode(payload, signer.private, algorithm="RS256", headers={"kid": signer.kid})


def test_only_keys_the_pinned_key_endorsed_are_trusted(
    service_key: SigningKey, attacker_key: SigningKey, tmp_path: Path
) -> None:
    second, third = SigningKey(), SigningKey()
    attacker = SigningKey()  # a kid of its own thumbprint, like the service's keys
    token = service_key.license("cust_a", issued_at=time.time() - 60)
    state = tmp_path / "state"
    with ForgedService() as forged:
        # The chain pinned -> second -> third, listed out of order, and the attacker's keys
        # endorsing themselves and each other.
        forged.answer(
            ENDORSEMENTS,
            200,
            {
                "endorsements": [
                    _endorse(second, third),
                    _endorse(attacker, attacker),
                    _endorse(attacker_key, attacker),
                    _endorse(service_key, second),
                ]
            },
        )
        client = LicenseClient(
            token, public_key=service_key.public_pem(), url=forged.url, state_dir=state
        )
        forged.answer(CHECK_IN, 200, {"license": attacker.license("cust_a", plan="enterprise")})
        refused = client.check_in()
        assert refused.outcome is Outcome.REFUSED, refused.message

        renewed = third.license("cust_a")
        forged.answer(CHECK_IN, 200, {"license": renewed})
        result = client.check_in()
        assert result.outcome is Outcome.CURRENT and result.changed, result.message
        assert client.license is not None and client.license.token == renewed

    # Restarted offline: the cached endorsements are verified again from the pinned key.
    offline = LicenseClient(token, public_key=service_key.public_pem(), state_dir=state)
    assert offline.verdict().allowed and offline.license is not None
    assert offline.license.token == renewed
