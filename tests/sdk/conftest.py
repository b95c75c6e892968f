"""The instance SDK against the real service: `billing api` processes on free loopback ports.

They share the run's PostgreSQL database, Redis prefix and RSA keys (set by tests/conftest.py).
Customers are created, revoked and changed through the admin HTTP API, as an operator would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.processes import api_server, free_port
from tests.sdk.forged_service import SigningKey

QUIET = {"LOG_LEVEL": "WARNING"}


@dataclass
class Service:
    """One running `billing api` and an admin key for it."""

    url: str
    admin_key: str

    def _call(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        response = httpx.request(method, self.url + path, headers=headers, json=json, timeout=30)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()

    def create_customer(self) -> tuple[str, str]:
        """A new customer on the 14-day trial: (customer id, its first license)."""
        body = self._call("POST", "/api/customers", {"email": f"{uuid.uuid4().hex}@example.com"})
        return body["customer"]["customerId"], body["license"]

    def license_of(self, customer_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/licenses/{customer_id}")

    def revoke(self, customer_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/licenses/{customer_id}/revoke", {"reason": "unpaid"})

    def reinstate(self, customer_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/licenses/{customer_id}/reinstate")

    def change_plan(self, customer_id: str, plan: str) -> dict[str, Any]:
        """Switch the customer's trial to `plan` (the service reissues the license)."""
        body = {"customerId": customer_id, "plan": plan}
        return self._call("POST", "/api/subscriptions/create-trial", body)

    def usage(self, customer_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/usage/{customer_id}")

    def jwks(self) -> dict[str, Any]:
        return httpx.get(self.url + "/.well-known/jwks.json", timeout=10).json()

    def public_key_pem(self) -> str:
        return httpx.get(self.url + "/api/licenses/public-key?format=pem", timeout=10).text


@pytest.fixture(scope="session")
def api_url(database: str) -> Iterator[str]:
    """The service as deployed (default settings)."""
    with api_server(env=QUIET) as url:
        yield url


@pytest.fixture(scope="session")
def expiring_api_url(database: str) -> Iterator[str]:
    """The service with LICENSE_MAX_DAYS=0: every license it issues expires as it is issued
    (a trial's license is otherwise good for 14 days), so expiry and renewal need no waiting."""
    with api_server(env={**QUIET, "LICENSE_MAX_DAYS": "0"}) as url:
        yield url


@pytest.fixture
def service(api_url: str, admin_key: str) -> Service:
    return Service(api_url, admin_key)


@pytest.fixture
def expiring_service(expiring_api_url: str, admin_key: str) -> Service:
    return Service(expiring_api_url, admin_key)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def public_key_file(service: Service, tmp_path: Path) -> Path:
    """The service's public key as shipped with an instance (LICENSE_PUBLIC_KEY)."""
    path = tmp_path / "public-key.pem"
    path.write_text(service.public_key_pem())
    return path


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on: the service is unreachable."""
    return f"http://127.0.0.1:{free_port()}"


class Sleeps:
    """Injected instead of time.sleep: records the waits, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


class Clock:
    """An injected clock the test sets."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def service_key() -> SigningKey:
    """The service's real RSA signing key, for a forged service's licenses."""
    return SigningKey()


@pytest.fixture(scope="module")
def attacker_key() -> SigningKey:
    return SigningKey("attacker-kid")
