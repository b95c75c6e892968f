"""The billing cycle as test helpers play it: renewals, failed and retried charges.

A renewal (`renew_awaiting_payment`) is Stripe's: at the period's end the subscription moves on
and its invoice is made as a draft showing the usage reported so far; Stripe finalizes it about
an hour later, reading the meter again, and then charges it ("Stripe waits until one hour after
the last webhook was successfully sent ... waits one hour after creation to finalize the
invoice", docs.stripe.com/api/invoices/object; `automatically_finalizes_at`, docs.stripe.com/
changelog/acacia/2024-09-30/automatically-finalizes-at-invoice; the meter read again:
docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period). That hour runs on the
stand-in's clock: `finalize_due` does what has come due, before every request and helper.
`advance_period` and `fail_payment` play a whole renewal (draft, hour, charge) at once.
"""

from __future__ import annotations

from .errors import invalid
from .ids import add_interval
from .store import Obj, changed_attributes
from .sub_shared import (
    LIVE,
    SubscriptionParts,
    set_totals,
)

# A renewal's draft is finalized this long after it is made (no webhook endpoint delays it).
FINALIZATION_GRACE_SECONDS = 3600
# Hidden bookkeeping: drafts waiting for finalization (invoice id -> when), and the events of
# work done on Stripe's own schedule that no helper has handed out yet.
_SCHEDULE = "invoice.finalizations"
_BACKGROUND = "background.events"


class Renewals(SubscriptionParts):
    def renew_awaiting_payment(self, subscription_id: str) -> list[Obj]:
        """Stripe's renewal before the charge: the period moves forward and the new invoice is
        a draft (the usage so far on it) that `finalize_due` finalizes and charges an hour later
        on the stand-in's clock; the status is still `active`."""
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] not in LIVE:
            raise invalid(f"Subscription {subscription_id} is {sub['status']}.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        invoice = self._renew(sub, paid=False, draft=True)
        self.store.emit("invoice.created", invoice)
        self.store.emit(
            "customer.subscription.updated",
            sub,
            changed_attributes(before, self.store.snapshot(sub)),
        )
        return self.store.events[mark:]

    def exhaust_retries(self, subscription_id: str, outcome: str = "unpaid") -> list[Obj]:
        """Smart Retries gave up on the open invoice: the subscription becomes `unpaid` or is
        `canceled`, as the account's retry settings say; the invoice stays unpaid."""
        if outcome not in ("unpaid", "canceled"):
            raise invalid("outcome must be unpaid or canceled", "outcome")
        sub = self.store.get("subscription", subscription_id)
        invoice = self.store.table("invoice").get(sub["latest_invoice"] or "")
        if sub["status"] != "past_due" or invoice is None or invoice["status"] != "open":
            raise invalid(f"Subscription {subscription_id} has no failing renewal.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        invoice["next_payment_attempt"] = None
        now = self.store.now()
        if outcome == "canceled":
            sub.update(status="canceled", canceled_at=now, ended_at=now)
            sub["cancellation_details"]["reason"] = "payment_failed"
            self.store.emit("customer.subscription.deleted", sub)
        else:
            sub["status"] = "unpaid"
            self.store.emit(
                "customer.subscription.updated",
                sub,
                changed_attributes(before, self.store.snapshot(sub)),
            )
        return self.store.events[mark:]

    def advance_period(self, subscription_id: str) -> list[Obj]:
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] == "canceled":
            raise invalid(f"Subscription {subscription_id} is canceled.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        if self._ends_now(sub):
            self._expire_pending_update_at_period_end(sub)
            sub.update(status="canceled", ended_at=sub["current_period_end"])
            self.store.emit("customer.subscription.deleted", sub)
            return self.store.events[mark:]
        invoice = self._renew(sub, paid=True)
        self.store.emit(
            "customer.subscription.updated",
            sub,
            changed_attributes(before, self.store.snapshot(sub)),
        )
        self._emit_paid(invoice)
        return self.store.events[mark:]

    def fail_payment(self, subscription_id: str) -> list[Obj]:
        """The renewal charge fails: a new period with an open invoice, status `past_due`.

        Called again while that invoice is still open, it fails another attempt on it.
        """
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] not in LIVE:
            raise invalid(f"Subscription {subscription_id} is {sub['status']}.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        latest = self._unpaid_renewal(sub)
        if latest is not None:
            invoice = latest
            if invoice["status"] == "draft":
                self._finalize_draft(invoice, auto_advance=True)
            invoice.update(status="open", attempted=True)
            invoice["attempt_count"] += 1
        else:
            invoice = self._renew(sub, paid=False)
            invoice.update(attempted=True, attempt_count=1)
        sub["status"] = "past_due"
        self.store.emit("invoice.payment_failed", invoice)
        previous = changed_attributes(before, self.store.snapshot(sub))
        if previous:
            self.store.emit("customer.subscription.updated", sub, previous)
        return self.store.events[mark:]

    def _unpaid_renewal(self, sub: Obj) -> Obj | None:
        """The renewal invoice still waiting for its charge (draft or open). Not necessarily the
        latest: an upgrade invoiced after the renewal was drafted is the latest then."""
        for invoice in self.store.newest_first("invoice"):
            if (
                invoice["subscription"] == sub["id"]
                and invoice["billing_reason"] == "subscription_cycle"
                and invoice["status"] in ("open", "draft")
            ):
                return invoice
        return None

    def pay_invoice(self, subscription_id: str) -> list[Obj]:
        """The open latest invoice (else the open renewal) gets paid (a retry succeeded):
        status back to `active`."""
        sub = self.store.get("subscription", subscription_id)
        if sub["status"] not in LIVE:
            # An ended subscription's invoices were voided or left unpaid; none reopens it.
            raise invalid(f"Subscription {subscription_id} is {sub['status']}.")
        invoice = self.store.table("invoice").get(sub["latest_invoice"] or "")
        if invoice is None or invoice["status"] != "open":
            invoice = self._unpaid_renewal(sub)
        if invoice is None or invoice["status"] != "open":
            # A void invoice (an expired pending update's) can never be paid.
            raise invalid(f"Subscription {subscription_id} has no open invoice.")
        mark = len(self.store.events)
        before = self.store.snapshot(sub)
        now = self.store.now()
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
        invoice.update(next_payment_attempt=None)
        invoice["status_transitions"]["paid_at"] = now
        sub["status"] = "active"
        hidden = self.store.hidden_of(sub["id"])
        pending = None
        if invoice["id"] == hidden.get("pending_invoice"):  # the pending update's invoice
            hidden.pop("pending_invoice")
            pending = hidden.pop("pending_items", None)
        if pending is not None:  # a pending update is applied once its invoice is paid
            sub["items"]["data"] = pending
            sub["pending_update"] = None
            self._apply_held(sub, hidden.pop("pending_held", {}))
        self._emit_paid(invoice)
        previous = changed_attributes(before, self.store.snapshot(sub))
        if previous:
            self.store.emit("customer.subscription.updated", sub, previous)
        return self.store.events[mark:]

    def _ends_now(self, sub: Obj) -> bool:
        cancel_at = sub["cancel_at"]
        return sub["cancel_at_period_end"] or (
            cancel_at is not None and cancel_at <= sub["current_period_end"]
        )

    def _renew(self, sub: Obj, *, paid: bool, draft: bool = False) -> Obj:
        """Move to the next period and bill it; `paid=False` leaves the invoice open, `draft`
        makes it a draft that is finalized (its usage read again) an hour from now."""
        hidden = self.store.hidden_of(sub["id"])
        self._expire_pending_update_at_period_end(sub)
        old_start, old_end = sub["current_period_start"], sub["current_period_end"]
        hidden["periods"] += 1
        steps = hidden["count"] * hidden["periods"]
        self._set_period(sub, old_end, add_interval(hidden["anchor"], hidden["interval"], steps))
        if sub["status"] in ("trialing", "past_due", "unpaid", "incomplete"):
            sub["status"] = "active"
        invoice = self._invoice(sub, "subscription_cycle", old_start, old_end, paid=paid)
        if draft:
            due = self.store.now() + FINALIZATION_GRACE_SECONDS
            invoice.update(status="draft", attempted=False, attempt_count=0, auto_advance=True)
            invoice.update(automatically_finalizes_at=due, next_payment_attempt=due)
            invoice["status_transitions"]["finalized_at"] = None
            self.store.hidden_of(_SCHEDULE)[invoice["id"]] = due
        pending = hidden.pop("pending_proration", 0)
        if pending:
            set_totals(invoice, max(0, invoice["total"] + pending), clear_discounts=False)
        # In arrears: the closed period's metered usage as reported by now (read again when a
        # draft is finalized).
        lines = self.usage.period_lines(sub, old_start, old_end, invoice if draft else None)
        self.usage.add_lines(invoice, lines)
        sub["latest_invoice"] = invoice["id"]
        return invoice

    # -- Stripe's own schedule ------------------------------------------------------------------

    def work_due(self) -> bool:
        """Whether a draft waits for finalization whose time has come (cheap: no copy)."""
        now = self.store.now()
        return any(at <= now for at in self.store.hidden_of(_SCHEDULE).values())

    def finalize_due(self) -> None:
        """Each renewal draft whose hour has passed on the stand-in's clock is finalized (the
        meter read again) and charged, oldest first; the events wait for `take_background`."""
        schedule = self.store.hidden_of(_SCHEDULE)
        now = self.store.now()
        due = sorted((at, invoice_id) for invoice_id, at in schedule.items() if at <= now)
        if not due:
            return
        mark = len(self.store.events)
        for _, invoice_id in due:
            schedule.pop(invoice_id, None)
            invoice = self.store.table("invoice")[invoice_id]
            if invoice["status"] == "draft":
                self._finalize_draft(invoice, auto_advance=True)
                self._collect(invoice)
        emitted = [event["id"] for event in self.store.events[mark:]]
        self.store.hidden_of(_BACKGROUND).setdefault("ids", []).extend(emitted)

    def take_background(self) -> list[Obj]:
        """The events of `finalize_due`'s work not handed out yet, oldest first."""
        ids = self.store.hidden_of(_BACKGROUND).pop("ids", [])
        return [self.store.table("event")[event_id] for event_id in ids]

    def _finalize_draft(self, invoice: Obj, *, auto_advance: bool) -> None:
        """A draft becomes `open`: its metered usage read again, no longer scheduled."""
        self.usage.reread(invoice)
        self.store.hidden_of(_SCHEDULE).pop(invoice["id"], None)
        invoice.update(status="open", auto_advance=auto_advance, automatically_finalizes_at=None)
        invoice["status_transitions"]["finalized_at"] = self.store.now()
        self.store.emit("invoice.finalized", invoice)

    def _collect(self, invoice: Obj) -> None:
        """The charge of a renewal Stripe just finalized: paid, or (the card declines) failed,
        the subscription `past_due` and Smart Retries to come. Nothing is charged for a
        subscription that ended meanwhile."""
        sub = self.store.table("subscription")[invoice["subscription"]]
        if sub["status"] not in LIVE:
            return
        before = self.store.snapshot(sub)
        now = self.store.now()
        invoice.update(attempted=True, attempt_count=invoice["attempt_count"] + 1)
        declines = self.store.hidden_of(sub["customer"]).get("declines", False)
        if invoice["amount_due"] > 0 and declines:
            invoice["next_payment_attempt"] = now + 3 * 86400
            sub["status"] = "past_due"
            self.store.emit("invoice.payment_failed", invoice)
        else:
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
            invoice["next_payment_attempt"] = None
            invoice["status_transitions"]["paid_at"] = now
            self._emit_paid(invoice)
        previous = changed_attributes(before, self.store.snapshot(sub))
        if previous:
            self.store.emit("customer.subscription.updated", sub, previous)

    def _set_period(self, sub: Obj, start: int, end: int) -> None:
        sub.update(current_period_start=start, current_period_end=end)
        for item in sub["items"]["data"]:
            item.update(current_period_start=start, current_period_end=end)
        if sub["cancel_at_period_end"]:
            sub["cancel_at"] = end

    def _emit_paid(self, invoice: Obj) -> None:
        self.store.emit("invoice.paid", invoice)
        self.store.emit("invoice.payment_succeeded", invoice)
