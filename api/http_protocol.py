"""The HTTP protocol `billing api` serves with: uvicorn's own, with TCP_NODELAY always on.

asyncio only sets TCP_NODELAY on accepted sockets whose listening socket says IPPROTO_TCP, and
the socket uvicorn binds itself for `--workers N` does not (proto 0). Without it Nagle's algorithm
holds the response body back until the client's delayed ACK (40 ms on Linux), because the
response headers and body are written separately: every request would take 40 ms or more.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


def _no_delay(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(transport)
