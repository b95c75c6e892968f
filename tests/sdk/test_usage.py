"""Usage reports against the real service: stored exactly once whatever the retries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from zemfyre_license import LicenseClient, ServiceRefusedError

from tests.conftest import TEST_DATABASE_URL, pg_scalar
from tests.helpers.processes import api_server
from tests.helpers.tcp_proxy import TcpProxy
from tests.sdk.conftest import QUIET, Service, Sleeps
from tests.sdk.proxies import AnswerDroppingProxy


def _stored(customer_id: str) -> tuple[object, object]:
    """(rows, their distinct idempotency keys) in usage_reports for the customer."""
    where = f"FROM usage_reports WHERE customer_id = '{customer_id}'"
    return pg_scalar(f"SELECT count(*) {where}"), pg_scalar(f"SELECT max(idempotency_key) {where}")


def test_a_report_whose_answer_was_lost_is_stored_once(
    service: Service, state_dir: Path, public_key_file: Path, sleeps: Sleeps
) -> None:
    customer_id, token = service.create_customer()
    when = datetime.now(UTC).replace(microsecond=0)
    with AnswerDroppingProxy(urlsplit(service.url).port or 80) as proxy:
        client = LicenseClient(
            token, url=proxy.url, public_key=public_key_file, state_dir=state_dir, sleep=sleeps
        )
        proxy.drop_next(1)
        receipt = client.report_usage("edge-1", active_devices=3, total_devices=4, timestamp=when)

    assert proxy.dropped == 1 and len(sleeps.waits) == 1  # one lost answer, one retry
    assert receipt.duplicate  # the retry found the first attempt's row
    assert _stored(customer_id) == (1, receipt.idempotency_key)

    # The same report sent again by a restarted instance: the same key, still one row.
    restarted = LicenseClient(token, url=service.url, public_key=public_key_file)
    again = restarted.report_usage("edge-1", active_devices=3, total_devices=4, timestamp=when)
    assert again.duplicate and again.idempotency_key == receipt.idempotency_key
    assert service.usage(customer_id)["summary"]["totalReports"] == 1


def _through(proxy: TcpProxy) -> str:
    """The run's database URL, reached through the proxy."""
    parts = urlsplit(TEST_DATABASE_URL)
    user, _, _ = parts.netloc.rpartition("@")
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def test_a_503_is_retried_after_its_retry_after_and_stored_once(
    service: Service, public_key_file: Path
) -> None:
    customer_id, token = service.create_customer()
    waits: list[float] = []
    database_port = urlsplit(TEST_DATABASE_URL).port or 5432
    with (
        TcpProxy("127.0.0.1", database_port) as database,
        api_server(env={**QUIET, "DATABASE_URL": _through(database)}) as url,
    ):

        def sleep(seconds: float) -> None:  # the database comes back while the SDK waits
            waits.append(seconds)
            database.restore()

        client = LicenseClient(token, url=url, public_key=public_key_file, sleep=sleep)
        database.cut()
        receipt = client.report_usage("edge-1", active_devices=2, total_devices=2)

    assert waits[0] == 5.0  # the service's Retry-After: 5, over a first backoff of <= 1 s
    assert not receipt.duplicate
    assert _stored(customer_id) == (1, receipt.idempotency_key)


def test_a_newer_license_in_the_answer_is_kept(service: Service, state_dir: Path) -> None:
    customer_id, token = service.create_customer()
    service.change_plan(customer_id, "starter")
    client = LicenseClient(token, url=service.url, state_dir=state_dir)

    receipt = client.report_usage("edge-1", active_devices=1, total_devices=1)

    assert receipt.license_updated
    assert client.license is not None and client.license.plan == "starter"
    current = service.license_of(customer_id)["license"]
    assert (state_dir / "license.jwt").read_text().strip() == current


def test_refusals_are_not_retried(service: Service, sleeps: Sleeps) -> None:
    customer_id, token = service.create_customer()
    client = LicenseClient(token, url=service.url, sleep=sleeps)
    client.report_usage("edge-1", active_devices=1, total_devices=1, idempotency_key="k-1")

    with pytest.raises(ServiceRefusedError) as refused:
        client.report_usage("edge-1", active_devices=2, total_devices=2, idempotency_key="k-1")
    assert refused.value.status == 409 and sleeps.waits == []
    with pytest.raises(ValueError, match="cannot exceed"):
        client.report_usage("edge-1", active_devices=3, total_devices=2)

    service.revoke(customer_id)
    # The service's usage 401 carries no signed license: a refusal, not a revocation.
    with pytest.raises(ServiceRefusedError) as revoked:
        client.report_usage("edge-1", active_devices=1, total_devices=1)
    assert revoked.value.status == 401 and "revoked" in revoked.value.message
    assert sleeps.waits == []
    # The usage answer's words do not revoke the license for good; check-in's signed license does.
    assert client.verdict().allowed
    assert client.check_in().revoked and client.verdict().revoked
