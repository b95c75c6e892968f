"""Check-in against the real service: plan changes, renewals, revocation, the service gone."""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from zemfyre_license import LicenseClient, Outcome, RetryPolicy

from tests.sdk.conftest import Service, Sleeps


def test_a_plan_change_is_picked_up_and_kept_atomically(
    service: Service, state_dir: Path, public_key_file: Path
) -> None:
    customer_id, token = service.create_customer()
    client = LicenseClient(token, url=service.url, state_dir=state_dir)

    first = client.check_in()
    assert first.outcome is Outcome.CURRENT and not first.changed, first.message
    assert client.license is not None and client.license.plan == "trial"
    assert not client.license.allows_devices(6)

    service.change_plan(customer_id, "professional")
    second = client.check_in()
    assert second.outcome is Outcome.CURRENT and second.changed, second.message
    newest = client.license
    assert newest is not None and newest.plan == "professional"
    assert newest.allows_devices(50) and newest.has_feature("hasAdvancedAlerts")
    assert second.verdict.allowed and second.verdict.license == newest
    # What the service now calls current is what the state directory holds, and nothing else:
    # the write went through a temporary file renamed into place.
    assert (state_dir / "license.jwt").read_text().strip() == service.license_of(customer_id)[
        "license"
    ]
    assert sorted(p.name for p in state_dir.iterdir()) == [
        "jwks.json",
        "license.jwt",
        "state.json",
        "state.lock",
    ]

    # A restarted instance, still configured with its first license and offline, runs on the
    # newest one it was given.
    restarted = LicenseClient(token, public_key=public_key_file, state_dir=state_dir)
    assert restarted.verdict().license == newest


def test_a_renewal_is_picked_up(
    expiring_service: Service, state_dir: Path, celery_worker: object
) -> None:
    from workers.celery_app import celery_app

    customer_id, token = expiring_service.create_customer()
    client = LicenseClient(token, url=expiring_service.url, state_dir=state_dir)
    assert client.check_in().outcome is Outcome.CURRENT
    first = client.license
    assert first is not None and first.expires_at == first.issued_at  # LICENSE_MAX_DAYS=0

    # Beat's hourly renewal, run now by the worker (with the default LICENSE_MAX_DAYS).
    celery_app.send_task("tasks.licenses.renew_licenses").get(timeout=60)
    renewed = client.check_in()

    assert renewed.outcome is Outcome.CURRENT and renewed.changed, renewed.message
    newest = client.license
    assert newest is not None and newest.jti != first.jti
    assert newest.expires_at > first.expires_at
    assert newest.expires_at == newest.trial_expires_at  # a trial's license ends with it
    assert renewed.verdict.allowed and not renewed.verdict.in_grace


def test_revocation_is_reported_as_revoked_and_survives_a_restart(
    service: Service, state_dir: Path, public_key_file: Path, closed_url: str
) -> None:
    customer_id, token = service.create_customer()
    client = LicenseClient(token, url=service.url, state_dir=state_dir)
    assert client.check_in().verdict.allowed

    service.revoke(customer_id)
    result = client.check_in()

    assert result.outcome is Outcome.REVOKED and result.revoked and not result.unreachable
    assert "revoked" in result.message
    assert not result.verdict.allowed and result.verdict.revoked
    # The license itself still verifies offline; only what the service said stops it, and that
    # is remembered: a restarted instance that cannot reach the service refuses it too.
    offline = LicenseClient(token, public_key=public_key_file, url=closed_url, state_dir=state_dir)
    assert offline.verdict().revoked and not offline.verdict().allowed

    # Reinstated: the operator hands the instance the new license, which checks in again.
    new_token = service.reinstate(customer_id)["license"]
    reinstated = LicenseClient(new_token, url=service.url, state_dir=state_dir)
    again = reinstated.check_in()
    assert again.outcome is Outcome.CURRENT and again.verdict.allowed, again.verdict.reason
    assert again.verdict.license is not None and again.verdict.license.token == new_token


def test_a_license_the_service_never_issued_is_refused_not_revoked(
    service: Service, state_dir: Path
) -> None:
    # The service answers 401 to both; only a revocation may be reported as one. A genuine
    # signature (the service's own key, as a leaked key would give) over a jti never issued:
    customer_id, token = service.create_customer()
    private_key = serialization.load_pem_private_key(
        Path(os.environ["LICENSE_PRIVATE_KEY_PATH"]).read_bytes(), password=None
    )
    claims = {**jwt.decode(token, options={"verify_signature": False}), "jti": uuid.uuid4().hex}
    kid = jwt.get_unverified_header(token)["kid"]
    unknown = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})
    client = LicenseClient(unknown, url=service.url, state_dir=state_dir)
    assert client.verdict().allowed  # offline it is indistinguishable

    result = client.check_in()

    assert result.outcome is Outcome.REFUSED and not result.revoked, result.message
    assert "not issued by this service" in result.message
    assert not (state_dir / "license.jwt").exists()  # nothing kept from a refusal
    assert result.verdict.license is not None
    assert result.verdict.license.customer_id == customer_id


def test_unreachable_service_keeps_the_last_good_license(
    service: Service, state_dir: Path, closed_url: str, sleeps: Sleeps
) -> None:
    customer_id, token = service.create_customer()
    online = LicenseClient(token, url=service.url, state_dir=state_dir)
    service.change_plan(customer_id, "starter")
    assert online.check_in().changed

    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=30.0)
    offline = LicenseClient(
        token,
        url=closed_url,
        state_dir=state_dir,
        retry=policy,
        sleep=sleeps,
        rng=random.Random(7),
    )
    result = offline.check_in()

    assert result.outcome is Outcome.UNREACHABLE and not result.revoked
    assert "unreachable after 4 attempt(s)" in result.message
    # Exponential backoff with jitter: each wait within [b/2, b] for b = 1, 2, 4.
    assert len(sleeps.waits) == 3
    for wait, backoff in zip(sleeps.waits, (1.0, 2.0, 4.0), strict=True):
        assert backoff / 2 <= wait <= backoff
    assert sleeps.waits != [1.0, 2.0, 4.0]  # jittered, not the bare backoff
    verdict = result.verdict
    assert verdict.allowed and not verdict.in_grace, verdict.reason
    assert verdict.license is not None and verdict.license.plan == "starter"


def test_from_env_reads_the_variables_instances_already_use(
    service: Service, tmp_path: Path
) -> None:
    customer_id, token = service.create_customer()
    for license_variable in ("IOTISTIC_LICENSE_KEY", "LICENSE_JWT"):
        environ = {
            license_variable: token,
            "LICENSE_PUBLIC_KEY": service.public_key_pem(),
            "BILLING_API_URL": service.url,
            "LICENSE_STATE_DIR": str(tmp_path / license_variable),
        }
        with LicenseClient.from_env(environ) as client:
            result = client.check_in()
            assert result.outcome is Outcome.CURRENT and result.verdict.allowed, result.message
            assert client.require().license is not None
        assert (tmp_path / license_variable / "license.jwt").read_text().strip() == token
        assert client.license is not None and client.license.customer_id == customer_id
