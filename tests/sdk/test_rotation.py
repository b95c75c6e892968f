"""Key rotation: `billing keys rotate`, the worker reissues, the instance refetches the JWKS."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from zemfyre_license import JwksKeys, LicenseClient, Outcome

from tests.helpers.processes import PROJECT_ROOT, api_server, billing_command
from tests.helpers.waiting import wait_until
from tests.sdk.conftest import QUIET, Service


def _rotate(key_env: dict[str, str]) -> str:
    done = subprocess.run(
        billing_command("keys", "rotate"),
        env={**os.environ, **key_env, "PYTHONPATH": str(PROJECT_ROOT)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _key_env(isolated_keys: Any) -> dict[str, str]:
    """The settings pointing the api process and `billing keys rotate` at the test's key copy."""
    return {
        "LICENSE_PRIVATE_KEY_PATH": str(isolated_keys.license_private_key_path),
        "LICENSE_PUBLIC_KEY_PATH": str(isolated_keys.license_public_key_path),
    }


def test_a_rotated_key_is_fetched_once_and_the_reissued_license_verifies(
    isolated_keys: Any, admin_key: str, celery_worker: object, tmp_path: Path
) -> None:
    # The api process, the `billing keys rotate` command and the worker (a thread of this test
    # process, whose settings isolated_keys points there) share a copy of the run's keys.
    key_env = _key_env(isolated_keys)
    with api_server(env={**QUIET, **key_env}) as url:
        service = Service(url, admin_key)
        customer_id, token = service.create_customer()
        shipped = tmp_path / "shipped-jwks.json"
        shipped.write_text(json.dumps(service.jwks()))
        state_dir = tmp_path / "state"
        client = LicenseClient(token, url=url, jwks=shipped, state_dir=state_dir)
        keys = client.keeper.keys
        assert isinstance(keys, JwksKeys)
        assert client.check_in().outcome is Outcome.CURRENT
        assert keys.fetches == 0  # the shipped key set knows the kid
        old_kid = client.license.kid if client.license else None

        assert "reissued with the new key by a worker" in _rotate(key_env)
        new_kid = wait_until(
            lambda: (kid := service.license_of(customer_id)["kid"]) != old_kid and kid, 60
        )
        result = client.check_in()

        assert result.outcome is Outcome.CURRENT and result.changed, result.message
        assert result.verdict.allowed and result.verdict.license is not None
        assert result.verdict.license.kid == new_kid
        assert keys.fetches == 1  # the unknown kid fetched the JWKS, once
        cached = json.loads((state_dir / "jwks.json").read_text())
        assert {key["kid"] for key in cached["keys"]} == {old_kid, new_kid}

    # Restarted with the service gone: the cached key set verifies the reissued license.
    offline = LicenseClient(token, url=url, jwks=shipped, state_dir=state_dir)
    verdict = offline.verdict()
    assert verdict.allowed and verdict.license is not None and verdict.license.kid == new_kid


def test_a_pinned_instance_follows_rotations_through_the_endorsements(
    isolated_keys: Any, admin_key: str, celery_worker: object, tmp_path: Path
) -> None:
    # The instance pinned the first key; the service rotates twice. Each new key is signed by the
    # one it replaced, so the pinned instance trusts the reissued licenses, offline too.
    key_env = _key_env(isolated_keys)
    with api_server(env={**QUIET, **key_env}) as url:
        service = Service(url, admin_key)
        customer_id, token = service.create_customer()
        pinned = service.public_key_pem()
        state_dir = tmp_path / "state"
        client = LicenseClient(token, url=url, public_key=pinned, state_dir=state_dir)
        kid = client.license.kid if client.license else None
        for _ in range(2):
            _rotate(key_env)
            kid = wait_until(
                lambda old=kid: (new := service.license_of(customer_id)["kid"]) != old and new,
                60,
            )
        result = client.check_in()

        assert result.outcome is Outcome.CURRENT and result.changed, result.message
        assert result.verdict.allowed and result.verdict.license is not None
        assert result.verdict.license.kid == kid

    offline = LicenseClient(token, public_key=pinned, state_dir=state_dir)
    verdict = offline.verdict()
    assert verdict.allowed and verdict.license is not None and verdict.license.kid == kid
