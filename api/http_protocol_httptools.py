"""uvicorn's httptools protocol with TCP_NODELAY (see api/http_protocol.py for why), bounded
requests and deadlines against slow clients.

httptools sets no limit on a request's head: it joins a header's pieces by repeated
concatenation, so a 128 MiB header grew the process by 230 MB and stalled the event loop for
seconds. Here the bytes of a request's head are counted as they arrive, before the parser sees
them: a URL over MAX_REQUEST_URL_BYTES is refused with 414, a head over MAX_REQUEST_HEADER_BYTES
with 431, and the connection closed. A client that has not sent its headers within
REQUEST_HEADER_TIMEOUT_SECONDS (from its first byte, or from connecting), or then its body within
REQUEST_BODY_TIMEOUT_SECONDS, gets 408 and is disconnected: trickling a byte every few seconds no
longer holds a connection forever.

A refusal is counted in the request metrics and logged on the access log like any answer: by
the envelope (api/envelope.py) when the application was already serving the request (a body
too slow: the scope carries the refusal's status), here otherwise (route "unmatched"; method and
path "-" for a connection that sent nothing, such as a load balancer's probe).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.envelope import REFUSED_STATUS, record_refusal
from api.http_protocol import _no_delay

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}
_ERRORS = {
    408: ("request_timeout", "the request was not received in time"),
    414: ("uri_too_long", "the request's URL is too long"),
    431: ("headers_too_large", "the request's headers are too large"),
}


# How often a connection's deadline is looked at: a slow client is cut off up to this late.
_TICK_SECONDS = 0.5
# At most this much of a refused request's path is logged (a 414's is over the URL cap).
_LOGGED_PATH_CHARS = 256


class _Refused(Exception):
    """Stops the parser; the refusal's status is the protocol's `_refusal`."""


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from core.settings import get_settings

        settings = get_settings()
        self._max_url = settings.max_request_url_bytes
        self._max_head = settings.max_request_header_bytes
        self._header_seconds = settings.request_header_timeout_seconds
        self._body_seconds = settings.request_body_timeout_seconds
        self._in_head = True
        self._head_bytes = 0
        self._refusal: int | None = None
        # The deadline of the request's part now awaited (head or body), or None between
        # requests (uvicorn's keep-alive timeout). Checked by one timer per connection a second,
        # not a timer per request: the hot path pays two clock reads.
        self._deadline: float | None = None
        self._ticker: asyncio.TimerHandle | None = None
        # When the request now awaited began (its first byte, or the connection): its timing.
        self._began = 0.0
        # Whether the request now awaited has begun (its request line's first byte parsed):
        # before that the parser has no method and uvicorn has not set `url`.
        self._begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(transport)
        self._began = self.loop.time()
        self._deadline = self._began + self._header_seconds
        self._ticker = self.loop.call_later(_TICK_SECONDS, self._tick)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        super().connection_lost(exc)

    def _tick(self) -> None:
        if self._deadline is not None and self.loop.time() >= self._deadline:
            self._ticker = None
            self._refuse(408)
        else:
            self._ticker = self.loop.call_later(_TICK_SECONDS, self._tick)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:
            # Bytes between requests cancel uvicorn's keep-alive timer, and some (a bare CRLF)
            # never begin a message: whatever arrives is the next head and has its deadline.
            self._began = self.loop.time()
            self._deadline = self._began + self._header_seconds
        if self._in_head:
            # Counted before parsing: a head that did not end within the cap is refused
            # without the parser joining any more of it.
            if self._head_bytes > self._max_head:
                self._refuse(431)
                return
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self._max_head and self._refusal is None:
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._deadline is None:
            self._began = self.loop.time()
            self._deadline = self._began + self._header_seconds

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self._max_url:
            self._refusal = 414
            raise _Refused  # httptools hands it back as a parser error: send_400_response

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._deadline = self.loop.time() + self._body_seconds
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._deadline = None
        self._in_head = True
        self._head_bytes = 0
        self._begun = False
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._send_refusal(self._refusal)
        else:
            super().send_400_response(msg)

    def _refuse(self, status: int) -> None:
        self._refusal = status
        self._send_refusal(status)

    def _send_refusal(self, status: int) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The application gets a disconnect and whatever it sends is dropped; the envelope
            # records the request with this status.
            cycle.scope[REFUSED_STATUS] = status
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        code, message = _ERRORS[status]
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()
        if cycle is None or cycle.response_complete:
            # Answered first: the client is not kept waiting for the log line.
            self._record_refusal(status)

    def _record_refusal(self, status: int) -> None:
        """Metrics and the access log line of a request refused before it reached the app."""
        if not self._begun:
            # Nothing of a request arrived (an idle connection: a probe, a port scan).
            record_refusal("-", "-", status, self.loop.time() - self._began)
            return
        try:
            method = self.parser.get_method().decode("latin-1")
        except Exception:  # noqa: BLE001 - the request line was not read that far
            method = "-"
        path = unquote(self.url.partition(b"?")[0].decode("latin-1"))[:_LOGGED_PATH_CHARS]
        record_refusal(method or "-", path, status, self.loop.time() - self._began)
