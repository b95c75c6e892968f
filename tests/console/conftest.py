"""Console fixtures: a test client signed in as an operator or a viewer."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

ORIGIN = "http://testserver"


def new_key(name: str, role: str = "operator") -> str:
    from core.api_keys import create_api_key
    from core.db import session_scope

    with session_scope() as session:
        return create_api_key(session, name, role).key


def sign_in(client, key: str) -> str:  # type: ignore[no-untyped-def]
    """Signs the client in; the CSRF token its pages carry."""
    answer = client.post(
        "/console/login", data={"api_key": key}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/console/customers").text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@pytest.fixture
def console_client() -> Iterator[object]:
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def operator(console_client) -> tuple[object, str]:  # type: ignore[no-untyped-def]
    """A client signed in with an operator's key, and its CSRF token."""
    return console_client, sign_in(console_client, new_key("alice@ops"))


@pytest.fixture
def viewer(console_client) -> tuple[object, str]:  # type: ignore[no-untyped-def]
    return console_client, sign_in(console_client, new_key("victor@support", "viewer"))
