"""The gateway's invoice calls (`StripeGateway` inherits them): finding the invoice that covers a
subscription's period, voiding an invoice nobody will pay, and billing again the part of a voided
invoice that was served.

Every list is read to its end: an invoice's embedded `lines` is only the first page (prorations
come first), and the invoice covering a period may be older than the newest ten invoices.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import stripe

from core.billing import invoices
from core.billing.stripe_errors import StripeRequestError, StripeUnavailableError

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class InvoiceCalls:
    client: stripe.StripeClient

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _iterate(self, list_fn: Any, params: Obj) -> Iterator[Obj]:
        raise NotImplementedError

    def with_all_lines(self, invoice: Obj) -> Obj:
        """`invoice` with every line, when Stripe embedded only the first page."""
        lines = invoice.get("lines") or {}
        if not lines.get("has_more"):
            return invoice
        every = list(self._iterate(self.client.v1.invoices.line_items.list, {}, invoice["id"]))
        return {**invoice, "lines": {**lines, "data": every, "has_more": False}}

    def _with_period_invoice(self, sub: Obj) -> Obj:
        """`sub` with the invoice covering its current period added (`invoices.PERIOD_INVOICE`)
        when the latest invoice is not that one: more reads, only after a mid-period change was
        invoiced."""
        latest = sub.get("latest_invoice")
        if isinstance(latest, dict):
            sub = {**sub, "latest_invoice": self.with_all_lines(latest)}
        period = invoices.current_period(sub)
        if period is None or invoices.latest_covers_period(sub):
            return sub
        for invoice in self._iterate(self.client.v1.invoices.list, {"subscription": sub["id"]}):
            invoice = self.with_all_lines(invoice)
            if invoices.covers(invoice, period):
                return {**sub, invoices.PERIOD_INVOICE: invoice}
        return sub

    def _after_write(self, sub: Obj) -> Obj:
        """The answer of a change Stripe has applied, with its period invoice if it can be read
        now. A failure of that extra read is no failure of the change (a retry could apply it
        twice): the answer goes back without it, and the period is then not judged paid by it."""
        try:
            return self._with_period_invoice(sub)
        except (StripeUnavailableError, StripeRequestError) as exc:
            log.warning("period invoice of %s not read after a change: %s", sub.get("id"), exc)
            return sub

    def void_unpaid_invoice(self, invoice: Obj) -> Obj | None:
        """Void an invoice nobody will pay (a canceled subscription's renewal or upgrade); None
        when it was paid or voided meanwhile (a Smart Retry between our read and the void). A
        subscription's draft cannot be deleted, only finalized (without collecting) and then
        voided (docs.stripe.com/api/invoices/delete, docs.stripe.com/api/invoices/void)."""
        invoice_id = str(invoice["id"])
        current = self._call(self.client.v1.invoices.retrieve, invoice_id)
        if current.get("status") == "draft":
            self._call(
                self.client.v1.invoices.finalize_invoice,
                invoice_id,
                params={"auto_advance": False},
            )
        elif current.get("status") not in ("open", "uncollectible"):
            return None
        return self._call(self.client.v1.invoices.void_invoice, invoice_id)

    def subscription_invoices(self, subscription_id: str) -> list[Obj]:
        """Every invoice of a subscription, newest first (to the list's end)."""
        return list(self._iterate(self.client.v1.invoices.list, {"subscription": subscription_id}))

    def void_unserved(self, unserved: list[Obj], period: tuple[int, int] | None) -> list[str]:
        """Void `unserved` (`invoices.unserved`: time a cancellation will not serve); the ids
        voided. A renewal bills the period before in arrears (metered usage): that was served,
        so it is billed again on its own (idempotently) before the renewal is voided; if the
        renewal was paid meanwhile, the second bill is voided instead. Safe to repeat."""
        voided = []
        for invoice in unserved:
            served = invoices.served_lines(self.with_all_lines(invoice), period)
            again = self.bill_again(invoice, served) if served else None
            if self.void_unpaid_invoice(invoice) is not None:
                voided.append(str(invoice["id"]))
            elif again is not None:
                self.void_unpaid_invoice(again)
        return voided

    def bill_again(self, invoice: Obj, lines: list[Obj]) -> Obj:
        """Bill `lines` of `invoice` (about to be voided: metered usage of a period already
        served) on an invoice of their own, charged like any other: an invoice item per line,
        then an invoice taking them (docs.stripe.com/api/invoiceitems/create,
        docs.stripe.com/api/invoices/create, `pending_invoice_items_behavior=include`). Keyed
        on the voided invoice's lines, so a retry bills nothing twice."""
        customer = str(invoice["customer"])
        tag = {"zemfyre_billed_again_from": str(invoice["id"])}
        for line in lines:
            params = {
                "customer": customer,
                "amount": int(line["amount"]),
                "currency": str(line.get("currency") or invoice.get("currency") or "usd"),
                "description": str(line.get("description") or "Metered usage"),
                "period": line.get("period") or {},
                "metadata": tag,
            }
            key = f"zemfyre-bill-again-{line['id']}"
            self._call(
                self.client.v1.invoice_items.create,
                params=params,
                options={"idempotency_key": key},
            )
        params = {
            "customer": customer,
            "pending_invoice_items_behavior": "include",
            "auto_advance": True,
            "metadata": tag,
        }
        key = f"zemfyre-bill-again-{invoice['id']}"
        return self._call(
            self.client.v1.invoices.create, params=params, options={"idempotency_key": key}
        )
