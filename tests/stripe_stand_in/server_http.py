"""The stand-in's HTTP side: the request record, the parsed call and its saved answer (for
idempotent replays), and the `http.server` handler that feeds requests to `StripeStandIn.handle`."""

from __future__ import annotations

import base64
import copy
import json
import sys
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .errors import StripeError
from .forms import Params
from .ids import new_request_id

if TYPE_CHECKING:
    from .server import StripeStandIn

IDEMPOTENT_MISMATCH = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request."
)


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the stand-in saw it (for assertions)."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int
    request_id: str
    stripe_version: str | None = None
    replayed: bool = False


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request on its way through `StripeStandIn.handle`."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    request_id: str = field(default_factory=new_request_id)
    params: Params = field(default_factory=dict)
    replayed: bool = False

    @property
    def idempotency_key(self) -> str | None:
        """Only POSTs are idempotent by key; GET and DELETE are idempotent anyway."""
        return self.headers.get("idempotency-key") if self.method == "POST" else None

    def fingerprint(self) -> str:
        return json.dumps(self.params, sort_keys=True)

    def record(self, status: int) -> RecordedRequest:
        return RecordedRequest(
            method=self.method,
            path=self.path,
            params=copy.deepcopy(self.params),
            idempotency_key=self.headers.get("idempotency-key"),
            status=status,
            request_id=self.request_id,
            stripe_version=self.headers.get("stripe-version"),
            replayed=self.replayed,
        )


@dataclass
class Saved:
    method: str
    path: str
    fingerprint: str
    response: ApiResponse
    request_id: str

    def matches(self, call: Call) -> bool:
        """Stripe refuses a reused key whose request differs from the first one."""
        return (self.method, self.path, self.fingerprint) == (
            call.method,
            call.path,
            call.fingerprint(),
        )


def api_key_from(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


def error_response(exc: StripeError, request_id: str) -> ApiResponse:
    headers = {}
    if exc.should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if exc.should_retry else "false"
    return ApiResponse(exc.status, exc.body(request_id), headers)


class RequestHandler(BaseHTTPRequestHandler):
    server_version = "stripe-stand-in/1.0"
    sys_version = ""
    server: HttpServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            response = self.server.stand_in.handle(method, self.path, headers, body)
        except Exception as exc:  # a stand-in bug: answer like Stripe's 500, keep serving
            error = StripeError(500, f"Stand-in failure: {exc!r}", type="api_error")
            response = error_response(error, new_request_id())
        payload = json.dumps(response.body, indent=2).encode("utf-8")
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of parallel SDK calls must not wait on SYN retries

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (a killed worker) is expected, not a stand-in bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], stand_in: StripeStandIn) -> None:
        self.stand_in = stand_in
        super().__init__(address, RequestHandler)
