"""Which invoice pays for a subscription's current period, and whether it is paid.

A subscription's `latest_invoice` is only its newest invoice: an upgrade invoiced after the
renewal was drafted is the latest while the renewal is still unpaid. A period is paid when the
invoice that *covers* it is paid: one with a line (not a proration) running from the period's
start to its end. The gateway adds that invoice to a subscription it reads when the latest is
not it (`PERIOD_INVOICE`); sync (paid-through) and cancellation (prorate or void) judge by it.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

# Ours, not Stripe's: the invoice covering the current period, when the latest invoice is not it.
PERIOD_INVOICE = "zemfyre_period_invoice"
# An invoice in these may still be collected: cancelling now voids it.
UNPAID = frozenset({"draft", "open", "uncollectible"})


def current_period(sub: Obj) -> tuple[int, int] | None:
    """The current period (start, end) as epoch seconds; on the items since 2025-03-31.basil,
    which all share the subscription's billing cycle."""
    for item in (sub.get("items") or {}).get("data") or []:
        start, end = item.get("current_period_start"), item.get("current_period_end")
        if start is not None and end is not None:
            return int(start), int(end)
    return None


def covers(invoice: Obj, period: tuple[int, int]) -> bool:
    """Whether `invoice` bills the whole of `period` (a proration bills only part of one)."""
    for line in (invoice.get("lines") or {}).get("data") or []:
        details = (line.get("parent") or {}).get("subscription_item_details") or {}
        line_period = line.get("period") or {}
        if details.get("proration"):
            continue
        start, end = line_period.get("start"), line_period.get("end")
        if start is not None and end is not None and start <= period[0] and end >= period[1]:
            return True
    return False


def latest_covers_period(sub: Obj) -> bool:
    """Whether the expanded latest invoice is the one covering the current period (or nothing
    better can be known: the latest invoice was not expanded, or the period is unknown)."""
    latest, period = sub.get("latest_invoice"), current_period(sub)
    return not isinstance(latest, dict) or period is None or covers(latest, period)


def period_invoice(sub: Obj) -> Obj | None:
    """The invoice covering the current period, as read with the subscription; None if none."""
    latest = sub.get("latest_invoice")
    if isinstance(latest, dict) and latest_covers_period(sub):
        return latest
    found = sub.get(PERIOD_INVOICE)
    return found if isinstance(found, dict) else None


def period_paid(sub: Obj) -> bool | None:
    """Whether the current period's invoice is paid; None when the subscription was read without
    its invoice (nothing to judge by)."""
    if not isinstance(sub.get("latest_invoice"), dict):
        return None
    invoice = period_invoice(sub)
    return invoice is not None and invoice.get("status") == "paid"


def unpaid_invoices(sub: Obj) -> list[Obj]:
    """The subscription's invoices, as read with it, that could still be collected."""
    found = [sub.get("latest_invoice"), sub.get(PERIOD_INVOICE)]
    unique = {i["id"]: i for i in found if isinstance(i, dict) and i.get("id")}
    return [i for i in unique.values() if i.get("status") in UNPAID]


def unserved_invoices(sub: Obj) -> list[Obj]:
    """The unpaid invoices, as read with `sub`, that bill time a cancellation now will not
    serve: the renewal of an unpaid period, an upgrade never paid. Read them *before* the
    cancel: its answer's latest invoice is the final one. Never that final invoice (read on a
    retry: it covers no period and was made at the cancellation): its prorations and usage were
    served."""
    return unserved(unpaid_invoices(sub), sub.get("canceled_at"), current_period(sub))


def unserved(found: list[Obj], canceled_at: Any, period: tuple[int, int] | None) -> list[Obj]:
    """Of `found`, the unpaid invoices billing time a cancellation at `canceled_at` (None: not
    canceled yet) does not serve: those covering the `period` it ended in, and any made before
    it. Never the final invoice the cancellation made (made at it, covering no period)."""
    return [
        invoice
        for invoice in found
        if invoice.get("status") in UNPAID
        and (
            canceled_at is None
            # The renewal covers the period; a final invoice never does (prorations, usage).
            or (period is not None and covers(invoice, period))
            or int(invoice.get("created") or 0) < int(canceled_at)
        )
    ]


def served_lines(invoice: Obj, period: tuple[int, int] | None) -> list[Obj]:
    """The lines of `invoice` billing time before `period` began: metered usage billed in
    arrears on a renewal (used, never paid for if the renewal is voided)."""
    if period is None:
        return []
    found = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        details = (line.get("parent") or {}).get("subscription_item_details") or {}
        end = (line.get("period") or {}).get("end")
        before = end is not None and end <= period[0]
        if before and not details.get("proration") and int(line.get("amount") or 0) > 0:
            found.append(line)
    return found
