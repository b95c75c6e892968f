"""Fixtures for the hostile-input tests: callers of every kind, and the fuzzing tally.

The tally is printed at the end of the run (pytest_terminal_summary) so docs/reliability.md can
quote how many schemathesis cases ran and how many failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from core.db import session_scope
from core.licensing.keys import load_signing_key
from core.licensing.tokens import sign_license
from core.settings import get_settings
from tests.stripe_fixtures import stand_in, stripe_server  # noqa: F401 (fixtures used here)


@dataclass
class FuzzTally:
    cases: int = 0
    failures: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)

    def record(self, label: str, failed: bool) -> None:
        self.cases += 1
        self.failures += int(failed)
        self.by_operation[label] = self.by_operation.get(label, 0) + 1


TALLY = FuzzTally()


@pytest.fixture
def fuzz_tally() -> FuzzTally:
    return TALLY


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not TALLY.cases:
        return
    terminalreporter.section("schemathesis")
    terminalreporter.write_line(
        f"schemathesis: {TALLY.cases} cases over {len(TALLY.by_operation)} operations, "
        f"{TALLY.failures} failures"
    )


@pytest.fixture
def generous_rate_limits() -> Iterator[None]:
    """Hundreds of requests from one test client must not turn into 429s."""
    # Its own MonkeyPatch: undoing it must not undo other fixtures' patches.
    patch = pytest.MonkeyPatch()
    try:
        patch.setenv("RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT", "1000000")
        patch.setenv("RATE_LIMIT_USAGE_PER_INSTANCE", "1000000")
        get_settings.cache_clear()
        yield
    finally:
        patch.undo()
        get_settings.cache_clear()


@dataclass(frozen=True)
class Callers:
    """Real credentials of every kind, for two customers A and B."""

    admin_key: str
    revoked_admin_key: str
    customer_a: str
    license_a: str
    customer_b: str
    license_b: str
    expired_license_a: str
    revoked_customer: str
    revoked_license: str


def _create_customer(session, email: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    from core.customers.service import create_customer, customer_detail

    customer = create_customer(session, email=email, name=None, company_name=None, plan=None)
    detail = customer_detail(session, customer.customer_id)
    assert detail.license is not None
    return customer.customer_id, detail.license.token


@pytest.fixture
def callers(generous_rate_limits: None) -> Callers:
    from core.api_keys import create_api_key, revoke_api_key
    from core.licensing.revocation import revoke_license

    with session_scope() as session:
        admin = create_api_key(session, "security-admin").key
        revoked = create_api_key(session, "security-revoked")
        revoke_api_key(session, revoked.id)
        customer_a, license_a = _create_customer(session, "a@security.example")
        customer_b, license_b = _create_customer(session, "b@security.example")
        revoked_customer, revoked_license = _create_customer(session, "r@security.example")
        revoke_license(session, revoked_customer, reason="security test")
    return Callers(
        admin_key=admin,
        revoked_admin_key=revoked.key,
        customer_a=customer_a,
        license_a=license_a,
        customer_b=customer_b,
        license_b=license_b,
        expired_license_a=_expired_license(customer_a),
        revoked_customer=revoked_customer,
        revoked_license=revoked_license,
    )


def _expired_license(customer_id: str) -> str:
    """A genuine license of the customer: its recorded jti, re-signed with `exp` in the past."""
    from core.licensing.service import current_license

    with session_scope() as session:
        row = current_license(session, customer_id)
        assert row is not None
        claims = dict(row.claims)
    claims["exp"] = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
    claims["iat"] = claims["exp"] - 3600
    return sign_license(claims, load_signing_key(get_settings()))
