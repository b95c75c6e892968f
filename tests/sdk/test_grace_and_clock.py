"""Expiry, the grace period while the service is unreachable, and a clock set back.

The clock is injected: a license issued now is judged days later without waiting.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from zemfyre_license import LicenseClient, Outcome

from tests.sdk.conftest import Clock, Service, Sleeps


def test_an_expired_license_runs_in_grace_while_the_service_is_unreachable(
    expiring_service: Service,
    state_dir: Path,
    public_key_file: Path,
    closed_url: str,
    sleeps: Sleeps,
) -> None:
    _, token = expiring_service.create_customer()  # expires as it is issued
    clock = Clock()
    client = LicenseClient(
        token,
        url=closed_url,
        public_key=public_key_file,
        state_dir=state_dir,
        clock=clock,
        sleep=sleeps,
    )
    license = client.license
    assert license is not None
    expiry = license.expires_at

    clock.now = expiry + timedelta(hours=1)
    assert client.check_in().outcome is Outcome.UNREACHABLE
    during = client.verdict()
    assert during.allowed and during.in_grace, during.reason
    assert during.grace_ends_at == expiry + timedelta(days=7)
    assert "grace" in during.reason

    clock.now = expiry + timedelta(days=7, hours=1)
    after = client.verdict()
    assert not after.allowed and not after.in_grace
    assert "grace period ended" in after.reason

    longer = LicenseClient(token, public_key=public_key_file, clock=clock, grace=timedelta(days=10))
    assert longer.verdict().allowed and longer.verdict().in_grace


def test_no_grace_once_the_service_said_there_is_no_renewal(
    expiring_service: Service, state_dir: Path
) -> None:
    # Grace covers an unreachable service. Reached after the expiry, the service answered with
    # the same expired license: there is nothing to wait for.
    _, token = expiring_service.create_customer()
    client = LicenseClient(token, url=expiring_service.url, state_dir=state_dir)
    result = client.check_in()

    assert result.outcome is Outcome.CURRENT and not result.changed
    assert not result.verdict.allowed and not result.verdict.in_grace
    assert "issued no renewal" in result.verdict.reason


def test_a_clock_set_back_is_refused_even_after_a_restart(
    service: Service, state_dir: Path, public_key_file: Path
) -> None:
    _, token = service.create_customer()
    client = LicenseClient(token, url=service.url, state_dir=state_dir)
    assert client.check_in().verdict.allowed
    license = client.license
    assert license is not None
    trusted = json.loads((state_dir / "state.json").read_text())["trusted_time"]
    # The service's Date header (or the license's iat) was kept as the latest trusted time.
    assert trusted >= license.issued_at.timestamp()

    # Restarted, offline, with the clock two days back (long before the license was issued):
    clock = Clock(license.issued_at - timedelta(days=2))
    restarted = LicenseClient(token, public_key=public_key_file, state_dir=state_dir, clock=clock)
    verdict = restarted.verdict()
    assert not verdict.allowed and verdict.clock_set_back
    assert "clock set back" in verdict.reason

    # A clock a few minutes slow is drift, not tampering.
    clock.now = license.issued_at - timedelta(minutes=5)
    assert restarted.verdict().allowed


def test_a_clock_set_back_cannot_revive_an_expired_license(
    expiring_service: Service, state_dir: Path, public_key_file: Path, sleeps: Sleeps
) -> None:
    # The license expired; the service's Date says so. Setting the clock back before the
    # expiry (and beyond the grace) to keep running is refused.
    _, token = expiring_service.create_customer()
    client = LicenseClient(token, url=expiring_service.url, state_dir=state_dir)
    client.check_in()
    license = client.license
    assert license is not None

    for back in (timedelta(days=30), timedelta(hours=1)):
        clock = Clock(license.expires_at - back)
        instance = LicenseClient(
            token, public_key=public_key_file, state_dir=state_dir, clock=clock, sleep=sleeps
        )
        assert not instance.verdict().allowed
