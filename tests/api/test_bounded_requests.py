"""Bounded requests on a real `billing api` process: oversized URLs (414) and heads (431) are
refused before they are parsed on, slow clients get 408 and lose the connection, and the process
takes a bounded number of connections (503 beyond)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.processes import api_server

LIMITS = {
    "MAX_REQUEST_URL_BYTES": "2048",
    "MAX_REQUEST_HEADER_BYTES": "8192",
    "REQUEST_HEADER_TIMEOUT_SECONDS": "1",
    "REQUEST_BODY_TIMEOUT_SECONDS": "1",
    "API_LIMIT_CONCURRENCY": "3",
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with api_server(env=LIMITS) as url:
        yield url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    # The server may answer and close while the rest is still on its way.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def test_a_huge_header_is_refused_with_431_and_the_process_keeps_answering(server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: ")
        for _ in range(64):  # 4 MiB of one header, never finished
            _send_quietly(sock, b"a" * 65536)
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"code": "headers_too_large"' in answer
    assert httpx.get(f"{server}/healthz").status_code == 200


def test_a_long_url_is_refused_with_414(server) -> None:
    with _connect(server) as sock:
        _send_quietly(sock, b"GET /healthz?q=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 414 ")
    # Headers within the caps are served as always.
    ok = httpx.get(f"{server}/healthz", headers={"X-Fine": "a" * 4000}, params={"q": "a" * 1500})
    assert ok.status_code == 200


def test_headers_trickled_too_slowly_get_408_and_the_connection_closed(server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        # Never finished: the deadline runs out while the server waits for the rest.
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code": "request_timeout"' in answer


def test_a_body_trickled_too_slowly_gets_408(server) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_connections_beyond_the_concurrency_limit_get_503(server) -> None:
    # Each held connection has begun a request it has not finished (within its deadline).
    held = [_connect(server) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        refused = httpx.get(f"{server}/healthz")
    finally:
        for sock in held:
            sock.close()
    assert refused.status_code == 503


def test_a_line_break_after_a_request_does_not_hold_the_connection_open(server) -> None:
    """Bytes between requests cancel uvicorn's keep-alive timer; a bare CRLF never starts a
    message, so without a deadline for the next head the connection stayed open forever."""
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"\r\n")
        # The server closes it (socket timeout 15 s: the test fails rather than hangs).
        _answer(sock)
