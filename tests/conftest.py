"""The shared test harness.

Every run gets its own PostgreSQL database, its own Redis key prefix (so concurrent runs never
take each other's tasks) and its own RSA keys; a real Celery worker thread consumes from Redis.
The environment is set here, before any project module reads the settings.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

RUN_ID = uuid.uuid4().hex[:10]
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_DATABASE = f"billing_test_{RUN_ID}"
TEST_DATABASE_URL = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DATABASE}"
KEYS_DIR = Path(tempfile.mkdtemp(prefix="billing-test-keys-"))
DATA_DIR = Path(tempfile.mkdtemp(prefix="billing-test-data-"))

os.environ.update(
    DATABASE_URL=TEST_DATABASE_URL,
    CELERY_BROKER_URL=REDIS_URL,
    CELERY_RESULT_BACKEND=REDIS_URL,
    CELERY_KEY_PREFIX=f"billing-test-{RUN_ID}:",
    LICENSE_PRIVATE_KEY_PATH=str(KEYS_DIR / "private-key.pem"),
    LICENSE_PUBLIC_KEY_PATH=str(KEYS_DIR / "public-key.pem"),
    DATA_DIR=str(DATA_DIR),
    STRIPE_WEBHOOK_SECRET="whsec_test_" + RUN_ID,
    STRIPE_THIN_WEBHOOK_SECRET="whsec_thin_test_" + RUN_ID,
    # The whole run comes from one address ("testclient"), and a credential not yet known good
    # counts against it like none; tests of the per-client and failed-authentication limits set
    # their own (tests/api/test_middleware.py, tests/api/test_failed_auth_lockout.py).
    RATE_LIMIT_FAILED_AUTH_PER_CLIENT="1000000",
    RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT="1000000",
)
for unset in ("LICENSE_PRIVATE_KEY", "STRIPE_SECRET_KEY", "STRIPE_API_BASE"):
    os.environ.pop(unset, None)

from sqlalchemy import create_engine, text  # noqa: E402

from tests.helpers.database import create_database, drop_database, truncate_all  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    from core import migrations
    from core.licensing.keys import generate_key_pair
    from core.settings import get_settings

    create_database(POSTGRES_ADMIN_URL, TEST_DATABASE)
    migrations.upgrade()
    generate_key_pair(get_settings())
    yield TEST_DATABASE_URL
    from core.db import engine_for

    engine_for(TEST_DATABASE_URL).dispose()
    drop_database(POSTGRES_ADMIN_URL, TEST_DATABASE)
    shutil.rmtree(KEYS_DIR, ignore_errors=True)
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    _delete_redis_keys()


def _delete_redis_keys() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"billing-test-{RUN_ID}:*", count=1000):
        client.delete(key)


@pytest.fixture(autouse=True)
def clean_tables(database: str) -> Iterator[None]:
    yield
    truncate_all(TEST_DATABASE_URL)


@pytest.fixture(scope="session")
def celery_worker(database: str) -> Iterator[object]:
    """A real Celery worker consuming the real Redis broker, in a thread of this process."""
    from celery.contrib.testing.worker import start_worker

    from workers.celery_app import celery_app

    with start_worker(
        celery_app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        shutdown_timeout=30,
        loglevel="WARNING",
    ) as worker:
        yield worker


@pytest.fixture
def api_client() -> Iterator[object]:
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def admin_key() -> str:
    from core.api_keys import create_api_key
    from core.db import session_scope

    with session_scope() as session:
        return create_api_key(session, "test-admin").key


@pytest.fixture
def admin_headers(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


@pytest.fixture
def db_session() -> Iterator[object]:
    from core.db import new_session

    session = new_session()
    try:
        yield session
    finally:
        session.close()


def pg_scalar(sql: str) -> object:
    """Read one value straight from the test database, bypassing the project's code."""
    engine = create_engine(TEST_DATABASE_URL)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def isolated_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Rotate keys in a copy of the test run's key folder, never in the shared one."""
    from core.licensing.keys import clear_caches
    from core.settings import get_settings

    settings = get_settings()
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(settings.license_private_key_path, keys / "private-key.pem")
    shutil.copy(settings.license_public_key_path, keys / "public-key.pem")
    monkeypatch.setattr(settings, "license_private_key_path", keys / "private-key.pem")
    monkeypatch.setattr(settings, "license_public_key_path", keys / "public-key.pem")
    clear_caches()
    yield settings
    clear_caches()
