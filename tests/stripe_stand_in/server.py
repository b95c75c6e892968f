"""A local Stripe stand-in: an HTTP server the official `stripe` SDK can be pointed at.

    stand_in = start_stand_in()
    client = stripe.StripeClient(
        "sk_test_standin", base_addresses={"api": stand_in.url}, max_network_retries=0
    )
    ...
    stand_in.stop()

It answers Stripe's v1 REST paths (form-encoded bodies, nested `a[b][0]` keys) with
Stripe's object shapes and error shapes, keeps everything in memory, records an event
for every state change, and offers test helpers that play the customer's and Stripe's
part (paying a Checkout Session, renewing, failing a charge, signing webhooks).
"""

from __future__ import annotations

import base64
import copy
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import objects, webhooks
from .billing_modes import BillingModes
from .catalog import Catalog
from .checkout import Checkout
from .errors import StripeError, injected, unauthorized
from .events import Events
from .forms import Params, expand_paths, parse_body, parse_query
from .ids import new_request_id
from .listing import expand
from .meters import Meters
from .portal import PortalAndDisputes
from .previews import InvoicePreviews
from .routes import build_routes, resolve, run_handler
from .store import Obj, Store
from .subscriptions import Subscriptions


def _default_api_version() -> str:
    try:
        import stripe
    except ImportError:  # pragma: no cover - the SDK is a test dependency
        return "2026-10-28.endive"
    return str(stripe.api_version)


DEFAULT_API_VERSION = _default_api_version()
DEFAULT_API_KEY = "sk_test_standin"
_KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")
_IDEMPOTENT_MISMATCH = (
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
class _Call:
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
class _Saved:
    method: str
    path: str
    fingerprint: str
    response: ApiResponse
    request_id: str

    def matches(self, call: _Call) -> bool:
        """Stripe refuses a reused key whose request differs from the first one."""
        return (self.method, self.path, self.fingerprint) == (
            call.method,
            call.path,
            call.fingerprint(),
        )


class StripeStandIn:
    """The server plus its state. Use `start_stand_in()` or `with StripeStandIn() as s:`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port = host, port
        self.api_key = api_key
        self.api_version = api_version
        self.store = Store(clock, api_version)
        self.catalog = Catalog(self.store)
        self.subscriptions = Subscriptions(self.store, self.catalog)
        self.checkout = Checkout(self.store, self.catalog, self.subscriptions)
        self._routes = build_routes(
            self.catalog, self.checkout, self.subscriptions, Events(self.store)
        )
        self.meters = Meters(self.store)
        self._routes += self.meters.routes()
        self.portal = PortalAndDisputes(self.store)
        self._routes += self.portal.routes()
        self.previews = InvoicePreviews(self.store, self.subscriptions, self.meters)
        self._routes += self.previews.routes()
        self._routes += BillingModes(self.store).routes()
        self._requests: list[RecordedRequest] = []
        self._saved: dict[str, _Saved] = {}
        self._fail_budget, self._fail_status, self._down = 0, 500, False
        self._fail_prefix = ""  # only requests whose path starts with it fail
        # A slow Stripe: requests whose path starts with the prefix are answered after a pause.
        self._delay_seconds, self._delay_prefix, self._delayed_started = 0.0, "", 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> StripeStandIn:
        with self._lifecycle:
            if self._server is not None:
                return self
            server = _Server((self.host, self.port), self)
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"stripe-stand-in:{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread; calling it again does nothing."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> StripeStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, api_key: str = DEFAULT_API_KEY, **options: Any) -> Any:
        """A `stripe.StripeClient` aimed at this stand-in (no retries unless asked)."""
        import stripe

        options.setdefault("max_network_retries", 0)
        return stripe.StripeClient(api_key, base_addresses={"api": self.url}, **options)

    # -- test helpers ------------------------------------------------------------------

    def complete_checkout(self, session_id: str, promotion_code: str | None = None) -> list[Obj]:
        """Pay an open session: subscription, paid invoice and their events, in order.

        `promotion_code` (a code or promo_ id) is what the buyer typed on the page; the
        session must have `allow_promotion_codes`.
        """
        return self._helper(lambda: self.checkout.complete(session_id, promotion_code))

    def advance_period(self, subscription_id: str) -> list[Obj]:
        """Renew into the next period with a paid invoice (or end it if set to cancel)."""
        return self._helper(lambda: self.subscriptions.advance_period(subscription_id))

    def fail_payment(self, subscription_id: str) -> list[Obj]:
        """The renewal charge fails: next period, open invoice, status `past_due`."""
        return self._helper(lambda: self.subscriptions.fail_payment(subscription_id))

    def decline_charges(self, customer_id: str, declines: bool = True) -> None:
        """The customer's card declines every charge from now on (or no longer)."""
        with self.store.lock:
            self.store.hidden_of(customer_id)["declines"] = declines

    def renew_awaiting_payment(self, subscription_id: str) -> list[Obj]:
        """Renewal before the charge: next period, draft invoice, still `active`."""
        return self._helper(lambda: self.subscriptions.renew_awaiting_payment(subscription_id))

    def expire_pending_update(self, subscription_id: str) -> list[Obj]:
        """The subscription's pending update expired unpaid: dropped, with its event."""
        return self._helper(lambda: self.subscriptions.expire_pending_update(subscription_id))

    def exhaust_retries(self, subscription_id: str, outcome: str = "unpaid") -> list[Obj]:
        """Smart Retries gave up: `unpaid` (or `canceled`) with the invoice left unpaid."""
        return self._helper(lambda: self.subscriptions.exhaust_retries(subscription_id, outcome))

    def dispute_latest_invoice(self, subscription_id: str) -> list[Obj]:
        """The charge of the subscription's latest (paid) invoice is disputed."""

        def run() -> list[Obj]:
            sub = self.store.get("subscription", subscription_id)
            return self.portal.dispute_invoice(str(sub["latest_invoice"]))

        return self._helper(run)

    def close_dispute(self, dispute_id: str, status: str) -> list[Obj]:
        return self._helper(lambda: self.portal.close_dispute(dispute_id, status))

    def pay_invoice(self, subscription_id: str) -> list[Obj]:
        """The open latest invoice is paid after all: status back to `active`."""
        return self._helper(lambda: self.subscriptions.pay_invoice(subscription_id))

    def create_subscription_directly(
        self,
        customer_id: str,
        price_id: str,
        metadata: dict[str, str] | None = None,
        trial_end: int | None = None,
    ) -> Obj:
        def run() -> Obj:
            sub = self.subscriptions.create_directly(customer_id, price_id, metadata, trial_end)
            return self.store.snapshot(sub)

        return self._helper(run)

    def signed_webhook(
        self, event: dict[str, Any], secret: str, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        return webhooks.signed_webhook(event, secret, timestamp)

    def send_webhook(self, url: str, event: dict[str, Any], secret: str) -> int:
        """POST a signed event to `url` as Stripe would; returns the HTTP status."""
        return webhooks.deliver(url, event, secret)

    def fail_next_requests(self, n: int, status: int = 500, path_prefix: str = "") -> None:
        """The next `n` requests (whose path starts with `path_prefix`) fail with `status`."""
        with self.store.lock:
            self._fail_budget, self._fail_status = n, status
            self._fail_prefix = path_prefix

    def set_down(self, down: bool) -> None:
        with self.store.lock:
            self._down = down

    def set_delay(self, seconds: float, path_prefix: str = "") -> None:
        """Answer requests whose path starts with `path_prefix` only after `seconds`.

        The pause happens before the request is handled and outside the store's lock, so other
        requests (and the test's own helpers) go on meanwhile; `0` turns it off.
        """
        with self.store.lock:
            self._delay_seconds, self._delay_prefix = max(0.0, seconds), path_prefix

    @property
    def delayed_started(self) -> int:
        """How many requests have begun a pause since the last reset."""
        with self.store.lock:
            return self._delayed_started

    @property
    def events(self) -> list[Obj]:
        """Every event so far, oldest first."""
        with self.store.lock:
            return copy.deepcopy(self.store.events)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.store.lock:
            return list(self._requests)

    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self._requests.clear()
            self._saved.clear()
            self._fail_budget, self._fail_status, self._down = 0, 500, False
            self._fail_prefix = ""
            self._delay_seconds, self._delay_prefix, self._delayed_started = 0.0, "", 0

    def _helper(self, action: Callable[[], Any]) -> Any:
        with self.store.transaction():
            return copy.deepcopy(action())

    # -- request handling --------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> ApiResponse:
        """Answer one HTTP request (`headers` keys lower-cased)."""
        split = urlsplit(target)
        self._pause_if_delayed(split.path)
        call = _Call(method, split.path, split.query, headers, body)
        with self.store.lock:
            try:
                response = self._answer(call)
            except StripeError as exc:
                response = _error_response(exc, call.request_id)
            response.headers.setdefault("Request-Id", call.request_id)
            response.headers["Stripe-Version"] = headers.get("stripe-version") or self.api_version
            if call.idempotency_key:
                response.headers["Idempotency-Key"] = call.idempotency_key
            self._requests.append(call.record(response.status))
        return response

    def _answer(self, call: _Call) -> ApiResponse:
        self._check_faults(call.path)
        self._authorize(call.headers.get("authorization", ""))
        call.params = parse_query(call.query)
        call.params.update(parse_body(call.body, call.headers.get("content-type", "")))
        key = call.idempotency_key
        if key and key in self._saved:
            call.replayed = True
            return self._replay(self._saved[key], call)
        handler, path_ids = resolve(self._routes, call.method, call.path)
        mutating = call.method in ("POST", "DELETE")
        with self.store.transaction() if mutating else self.store.lock:
            with self.store.acting_for(call.request_id if mutating else None, key):
                result = run_handler(handler, call.params, path_ids)
            response = ApiResponse(200, self._present(result, call.params))
        if key:
            saved = _Saved(call.method, call.path, call.fingerprint(), response, call.request_id)
            self._saved[key] = saved
        return response

    def _pause_if_delayed(self, path: str) -> None:
        with self.store.lock:
            seconds = self._delay_seconds if path.startswith(self._delay_prefix) else 0.0
            if seconds:
                self._delayed_started += 1
        if seconds:
            time.sleep(seconds)

    def _check_faults(self, path: str) -> None:
        if self._down:
            raise injected(503)
        if self._fail_budget > 0 and path.startswith(self._fail_prefix):
            self._fail_budget -= 1
            raise injected(self._fail_status)

    def _authorize(self, authorization: str) -> None:
        api_key = _api_key_from(authorization)
        if not api_key:
            raise unauthorized(None)
        if self.api_key is not None and api_key != self.api_key:
            raise unauthorized(api_key)
        if self.api_key is None and not api_key.startswith(_KEY_PREFIXES):
            raise unauthorized(api_key)

    def _replay(self, saved: _Saved, call: _Call) -> ApiResponse:
        if not saved.matches(call):
            raise StripeError(
                400,
                _IDEMPOTENT_MISMATCH.format(key=call.idempotency_key),
                type="idempotency_error",
                should_retry=False,
            )
        headers = {"Idempotent-Replayed": "true", "Original-Request": saved.request_id}
        return ApiResponse(saved.response.status, copy.deepcopy(saved.response.body), headers)

    def _present(self, result: Obj, params: Params) -> Obj:
        if result.get("object") == "list":
            shown = dict(result)
            shown["data"] = [self.store.snapshot(item) for item in result["data"]]
        else:
            shown = self.store.snapshot(result)
        paths = expand_paths(params)
        if paths:
            expand(shown, paths, self.store.find_any, self._includable)
        return shown

    def _includable(self, node: Obj, key: str) -> Obj | None:
        """Lists Stripe only includes when expanded (`line_items`, `subscriptions`)."""
        if node.get("object") == "customer" and key == "subscriptions":
            subs = [
                self.store.snapshot(sub)
                for sub in self.store.newest_first("subscription")
                if sub["customer"] == node["id"] and sub["status"] != "canceled"
            ]
            return objects.list_object(subs, f"/v1/customers/{node['id']}/subscriptions")
        return self.checkout.virtual(node, key)


def _api_key_from(authorization: str) -> str | None:
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


def _error_response(exc: StripeError, request_id: str) -> ApiResponse:
    headers = {}
    if exc.should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if exc.should_retry else "false"
    return ApiResponse(exc.status, exc.body(request_id), headers)


class _Handler(BaseHTTPRequestHandler):
    server_version = "stripe-stand-in/1.0"
    sys_version = ""
    server: _Server

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
            response = _error_response(error, new_request_id())
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of parallel SDK calls must not wait on SYN retries

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (a killed worker) is expected, not a stand-in bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], stand_in: StripeStandIn) -> None:
        self.stand_in = stand_in
        super().__init__(address, _Handler)


def start_stand_in(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    api_version: str = DEFAULT_API_VERSION,
    clock: Callable[[], float] = time.time,
) -> StripeStandIn:
    """Start a stand-in on a free port (`port=0`); stop it with `.stop()`."""
    stand_in = StripeStandIn(
        host=host, port=port, api_key=api_key, api_version=api_version, clock=clock
    )
    return stand_in.start()
