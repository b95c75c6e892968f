"""Requests the HTTP protocol refuses for their bounds (414 URL too long, 431 head too large,
408 too slow) are counted in the request metrics and logged on the access log like any other
answer: the protocol answers those before the app (and its envelope) sees them, and a body too
slow is cut off while the app is waiting for it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from api.app import create_app
from api.http_protocol_httptools import NoDelayHttpToolsProtocol
from core.metrics import REGISTRY


class _Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 3100)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _count(status: int) -> float:
    return (
        REGISTRY.get_sample_value(
            "billing_http_requests_total",
            {
                "method": "POST" if status == 408 else "GET",
                "route": "unmatched",
                "status": str(status),
            },
        )
        or 0.0
    )


async def _serve(chunks: list[bytes], *, wait: float = 0.0) -> _Transport:
    config = Config(app=create_app(), http=NoDelayHttpToolsProtocol, log_config=None)
    config.load()
    protocol = NoDelayHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    for chunk in chunks:
        if not transport.closed:
            protocol.data_received(chunk)
    deadline = asyncio.get_running_loop().time() + wait
    while not transport.closed and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # the app, if it was serving, finishes with its disconnect
    protocol.connection_lost(None)
    return transport


@pytest.mark.parametrize(
    ("status", "chunks"),
    [
        (414, [b"GET /healthz?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"]),
        (431, [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: ", *[b"a" * 8192] * 4]),
    ],
)
def test_a_request_refused_for_its_size_is_counted_and_logged(
    status: int, chunks: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    before = _count(status)
    with caplog.at_level(logging.INFO, logger="api.access"):
        transport = asyncio.run(_serve(chunks))
    assert transport.written.startswith(b"HTTP/1.1 %d " % status)
    assert _count(status) == before + 1
    lines = [r for r in caplog.records if r.name == "api.access" and r.status == status]
    assert len(lines) == 1
    assert lines[0].method == "GET" and lines[0].path == "/healthz"


def test_a_body_too_slow_is_counted_and_logged_as_408(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REQUEST_BODY_TIMEOUT_SECONDS", "0.5")
    from core.settings import get_settings

    get_settings.cache_clear()
    before = REGISTRY.get_sample_value(
        "billing_http_requests_total",
        {"method": "POST", "route": "/webhooks/stripe", "status": "408"},
    )
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    try:
        with caplog.at_level(logging.INFO, logger="api.access"):
            transport = asyncio.run(_serve([head], wait=5))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    after = REGISTRY.get_sample_value(
        "billing_http_requests_total",
        {"method": "POST", "route": "/webhooks/stripe", "status": "408"},
    )
    assert (after or 0) == (before or 0) + 1
    statuses = [r.status for r in caplog.records if r.name == "api.access"]
    assert statuses == [408]


def test_an_idle_connection_is_counted_and_logged_as_408(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection that never sends a byte (a load balancer's probe, a port scan): its 408 is
    recorded like any refusal, and nothing raises in the connection's timer."""
    monkeypatch.setenv("REQUEST_HEADER_TIMEOUT_SECONDS", "0.5")
    from core.settings import get_settings

    get_settings.cache_clear()
    labels = {"method": "-", "route": "unmatched", "status": "408"}
    before = REGISTRY.get_sample_value("billing_http_requests_total", labels) or 0.0
    loop_errors: list[dict[str, object]] = []

    async def idle() -> _Transport:
        asyncio.get_running_loop().set_exception_handler(lambda _, c: loop_errors.append(c))
        return await _serve([], wait=5)

    try:
        with caplog.at_level(logging.INFO, logger="api.access"):
            transport = asyncio.run(idle())
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert transport.written.startswith(b"HTTP/1.1 408 ") and transport.closed
    assert loop_errors == []
    assert REGISTRY.get_sample_value("billing_http_requests_total", labels) == before + 1
    lines = [r for r in caplog.records if r.name == "api.access"]
    assert [(r.method, r.path, r.status) for r in lines] == [("-", "-", 408)]
