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

import copy
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import objects
from .billing_modes import BillingModes
from .catalog import Catalog
from .checkout import Checkout
from .errors import StripeError, injected, unauthorized
from .events import Events
from .forms import Params, expand_paths, parse_body, parse_query
from .listing import expand
from .meter_summaries import summary_routes
from .meters import Meters
from .portal import PortalAndDisputes
from .previews import InvoicePreviews
from .routes import build_routes, resolve, run_handler
from .server_helpers import StandInHelpers
from .server_http import (
    IDEMPOTENT_MISMATCH,
    ApiResponse,
    Call,
    HttpServer,
    RecordedRequest,
    Saved,
    api_key_from,
    error_response,
)
from .store import Obj, Store
from .subscriptions import Subscriptions
from .thin_events import ThinEvents


def _default_api_version() -> str:
    try:
        import stripe
    except ImportError:  # pragma: no cover - the SDK is a test dependency
        return "2026-10-28.endive"
    return str(stripe.api_version)


DEFAULT_API_VERSION = _default_api_version()
DEFAULT_API_KEY = "sk_test_standin"

_KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_VERSION",
    "RecordedRequest",
    "StripeStandIn",
    "start_stand_in",
]


class StripeStandIn(StandInHelpers):
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
        self._routes += self.meters.routes() + summary_routes(self.meters)
        self.portal = PortalAndDisputes(self.store)
        self._routes += self.portal.routes()
        self.previews = InvoicePreviews(self.store, self.subscriptions, self.meters)
        self._routes += self.previews.routes()
        self._routes += BillingModes(self.store).routes()
        self._routes += ThinEvents(self.store).routes()
        self._requests: list[RecordedRequest] = []
        self._saved: dict[str, Saved] = {}
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
            server = HttpServer((self.host, self.port), self)
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

    # -- request handling --------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> ApiResponse:
        """Answer one HTTP request (`headers` keys lower-cased)."""
        split = urlsplit(target)
        self._pause_if_delayed(split.path)
        call = Call(method, split.path, split.query, headers, body)
        with self.store.lock:
            try:
                response = self._answer(call)
            except StripeError as exc:
                response = error_response(exc, call.request_id)
            response.headers.setdefault("Request-Id", call.request_id)
            response.headers["Stripe-Version"] = headers.get("stripe-version") or self.api_version
            if call.idempotency_key:
                response.headers["Idempotency-Key"] = call.idempotency_key
            self._requests.append(call.record(response.status))
        return response

    def _answer(self, call: Call) -> ApiResponse:
        self._check_faults(call.path)
        self._authorize(call.headers.get("authorization", ""))
        if self.subscriptions.work_due():
            # What Stripe did on its own by now (a renewal's draft finalized after its hour).
            with self.store.transaction():
                self.subscriptions.finalize_due()
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
            saved = Saved(call.method, call.path, call.fingerprint(), response, call.request_id)
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
        api_key = api_key_from(authorization)
        if not api_key:
            raise unauthorized(None)
        if self.api_key is not None and api_key != self.api_key:
            raise unauthorized(api_key)
        if self.api_key is None and not api_key.startswith(_KEY_PREFIXES):
            raise unauthorized(api_key)

    def _replay(self, saved: Saved, call: Call) -> ApiResponse:
        if not saved.matches(call):
            raise StripeError(
                400,
                IDEMPOTENT_MISMATCH.format(key=call.idempotency_key),
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
