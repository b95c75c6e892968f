"""The stand-in's test helpers: they play the customer's and Stripe's part (paying a Checkout
Session, renewing, failing a charge, disputes), inject faults, and read what happened."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from . import webhooks
from .checkout import Checkout
from .portal import PortalAndDisputes
from .server_http import RecordedRequest, Saved
from .store import Obj, Store
from .subscriptions import Subscriptions


class StandInHelpers:
    """Mixed into `StripeStandIn`, whose state (store, parts, request log, faults) they use."""

    store: Store
    subscriptions: Subscriptions
    checkout: Checkout
    portal: PortalAndDisputes
    _requests: list[RecordedRequest]
    _saved: dict[str, Saved]
    _fail_budget: int
    _fail_status: int
    _fail_prefix: str
    _down: bool
    _delay_seconds: float
    _delay_prefix: str
    _delayed_started: int

    def complete_checkout(self, session_id: str, promotion_code: str | None = None) -> list[Obj]:
        """Pay an open session: subscription, paid invoice and their events, in order.

        `promotion_code` (a code or promo_ id) is what the buyer typed on the page; the
        session must have `allow_promotion_codes`.
        """
        return self._helper(lambda: self.checkout.complete(session_id, promotion_code))

    def advance_period(self, subscription_id: str) -> list[Obj]:
        """Renew into the next period with a paid invoice (or end it if set to cancel): the
        renewal, its hour and its charge at once, the meter read now."""
        return self._helper(lambda: self.subscriptions.advance_period(subscription_id))

    def fail_payment(self, subscription_id: str) -> list[Obj]:
        """The renewal charge fails: next period, open invoice, status `past_due`."""
        return self._helper(lambda: self.subscriptions.fail_payment(subscription_id))

    def decline_charges(self, customer_id: str, declines: bool = True) -> None:
        """The customer's card declines every charge from now on (or no longer)."""
        with self.store.lock:
            self.store.hidden_of(customer_id)["declines"] = declines

    def renew_awaiting_payment(self, subscription_id: str) -> list[Obj]:
        """Renewal before the charge: next period, draft invoice (finalized and charged by
        `run_due` once the clock is an hour on), still `active`."""
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

    def set_meter_aggregation_delay(self, seconds: float) -> None:
        """Meter events are aggregated (counted by event summaries and by invoices, prorations
        included) only `seconds` after they arrive, by the stand-in's clock, as Stripe processes
        them asynchronously; `0` (the default) counts them at once."""
        with self.store.lock:
            self.store.hidden_of("billing.meter_settings")["delay"] = max(0.0, seconds)

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

    def run_due(self) -> list[Obj]:
        """Stripe's own work up to the stand-in's clock: each renewal draft an hour old is
        finalized (the meter read again) and charged. Returns the events of that work not
        handed out yet, also of work done on the way of an API request or another helper."""
        return self._helper(self.subscriptions.take_background)

    def _helper(self, action: Callable[[], Any]) -> Any:
        with self.store.transaction():
            self.subscriptions.finalize_due()
            return copy.deepcopy(action())
