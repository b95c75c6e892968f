"""Metered usage on invoices: what Stripe bills of a meter for a subscription's metered items.

Stripe's rules the stand-in keeps:

- a metered item bills, in arrears on the invoice that closes its period, its meter's sum for the
  subscription's customer over the part of the period the item carried its price;
- that invoice reads the meter when it is finalized: a renewal's draft shows the usage reported
  by its creation and is read again when it is finalized an hour later (`advance_period` plays
  both at once); an event stamped into a period whose invoice is final is accepted and never
  billed ("All invoices have a default finalization grace period of 1 hour. During the
  finalization grace period, you can continue to report usage for the previous billing period.
  During finalization, Stripe updates the invoice to reflect the latest quantity for its billing
  period", docs.stripe.com/billing/subscriptions/usage-based/configure-grace-period);
- flexible billing mode (the default for subscriptions created under 2025-09-30.clover and
  later, docs.stripe.com/changelog/clover/2025-09-30/billing-mode-default-flexible): removing a
  metered price (deleting its item or swapping its price) bills the usage reported so far: "we
  create an invoice item that bills for previously reported metered usage when you remove a
  metered price", pending for the next invoice, or invoiced at once with `always_invoice`;
  `proration_behavior=none` removes it without billing it;
- classic billing mode: after a swap "we reflect only usage that occurs after the update"; the
  usage before is never billed (both: docs.stripe.com/billing/subscriptions/usage-based/
  manage-billing-setup, "Update prices mid-cycle").
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from . import objects
from .ids import new_id
from .store import Obj, Store

if TYPE_CHECKING:
    from .meters import Meters


def is_metered(item: Obj) -> bool:
    return ((item.get("price") or {}).get("recurring") or {}).get("usage_type") == "metered"


def is_flexible(sub: Obj) -> bool:
    return (sub.get("billing_mode") or {}).get("type") == "flexible"


class UsageBilling:
    def __init__(self, store: Store, meters: Meters) -> None:
        self.store = store
        self.meters = meters

    def _since(self, item_id: str) -> int:
        return int(self.store.hidden_of(item_id).get("usage_since", 0))

    def start_counting(self, item: Obj, since: int) -> None:
        self.store.hidden_of(item["id"])["usage_since"] = since

    def usage(self, sub: Obj, price: Obj, since: int, until: int) -> int:
        """The meter's sum for the subscription's customer over [since, until)."""
        meter_id = (price.get("recurring") or {}).get("meter")
        meter = self.store.hidden_of("billing.meters").get(meter_id or "")
        if meter is None:
            return 0
        return int(self.meters.summed(meter["event_name"], sub["customer"], start=since, end=until))

    # -- an update removing or swapping metered prices ---------------------------------------

    def prices_left(self, sub: Obj, before: Obj, proration: str) -> list[Obj]:
        """After an update is applied: bill what the metered prices that left had counted (as
        invoice lines, for the caller's invoice or the next one), and restart the count of a
        swapped item. Nothing billed in classic mode or with `proration_behavior=none`."""
        # Usage reported up to this second counts: "previously reported metered usage".
        now = self.store.now() + 1
        current = {item["id"]: item["price"]["id"] for item in sub["items"]["data"]}
        lines = []
        for old in before["items"]["data"]:
            if not is_metered(old) or current.get(old["id"]) == old["price"]["id"]:
                continue
            since = self._since(old["id"])
            if is_flexible(sub) and proration != "none":
                quantity = self.usage(sub, old["price"], since, now)
                if quantity:
                    lines.append(self._line(sub, old, quantity, since, now))
            if old["id"] in current:
                self.start_counting(_item(sub, old["id"]), now)
        return lines

    def keep_for_next_invoice(self, sub: Obj, lines: list[Obj]) -> None:
        self.store.hidden_of(sub["id"]).setdefault("pending_usage", []).extend(lines)

    # -- invoices --------------------------------------------------------------------------

    def period_lines(self, sub: Obj, start: int, end: int, draft: Obj | None = None) -> list[Obj]:
        """The usage of the period [start, end) for each metered item, plus the usage lines kept
        for the next invoice; each item then counts from `end`. For a `draft` invoice the reads
        are remembered, so its finalization reads the meter again (`reread`)."""
        lines = list(self.store.hidden_of(sub["id"]).pop("pending_usage", []))
        reads = []
        for item in sub["items"]["data"]:
            if is_metered(item):
                since = max(start, self._since(item["id"]))
                reads.append({"item": copy.deepcopy(item), "since": since})
                self.start_counting(item, end)
        metered = self._read(sub, reads, end)
        if draft is not None:
            self.store.hidden_of(draft["id"])["meter_read"] = {
                "subscription": sub["id"],
                "reads": reads,
                "end": end,
                "lines": [line["id"] for line in metered],
            }
        return lines + metered

    def _read(self, sub: Obj, reads: list[Obj], end: int) -> list[Obj]:
        lines = []
        for read in reads:
            quantity = self.usage(sub, read["item"]["price"], read["since"], end)
            if quantity:
                lines.append(self._line(sub, read["item"], quantity, read["since"], end))
        return lines

    def reread(self, invoice: Obj) -> None:
        """A draft being finalized: its usage lines replaced by the meter's sums now, for the
        same items over the same windows (events reported during the draft's hour count)."""
        read = self.store.hidden_of(invoice["id"]).pop("meter_read", None)
        if read is None:
            return
        sub = self.store.table("subscription")[read["subscription"]]
        gone = set(read["lines"])
        billed = self.store.hidden_of("usage_lines")
        removed = [line for line in invoice["lines"]["data"] if line["id"] in gone]
        invoice["lines"]["data"] = [
            line for line in invoice["lines"]["data"] if line["id"] not in gone
        ]
        for line in removed:
            billed.pop(line["id"], None)
        _add_to_totals(invoice, -sum(line["amount"] for line in removed))
        self.add_lines(invoice, self._read(sub, read["reads"], read["end"]))

    def add_lines(self, invoice: Obj, lines: list[Obj]) -> None:
        if not lines:
            return
        billed = self.store.hidden_of("usage_lines")
        for line in lines:
            line["invoice"] = invoice["id"]
            billed[line["id"]] = {"invoice": invoice["id"], "quantity": line["quantity"]}
        invoice["lines"]["data"].extend(lines)
        _add_to_totals(invoice, sum(line["amount"] for line in lines))

    def _line(self, sub: Obj, item: Obj, quantity: int, since: int, until: int) -> Obj:
        price = item["price"]
        amount = (price.get("unit_amount") or 0) * quantity
        fields = {
            "amount": amount,
            "description": f"{quantity} × usage (at {price.get('unit_amount') or 0} / unit)",
            "metadata": sub["metadata"],
            "period_end": until,
            "period_start": since,
            "price": price,
            "quantity": quantity,
            "subscription": sub["id"],
            "subscription_item": item["id"],
            "subtotal": amount,
        }
        return objects.invoice_line(new_id("il"), "", fields)

    # -- test helpers ----------------------------------------------------------------------

    def billed(self, customer_id: str) -> int:
        """The metered quantity invoiced to the customer so far, and kept for its next invoice:
        what Stripe bills of the meter, as opposed to what the meter holds (`Meters.summed`)."""
        invoices = self.store.tables["invoice"]
        invoiced = sum(
            billed["quantity"]
            for billed in self.store.hidden_of("usage_lines").values()
            if invoices[billed["invoice"]]["customer"] == customer_id
            and invoices[billed["invoice"]]["status"] != "void"
        )
        pending = sum(
            line["quantity"]
            for sub in self.store.tables["subscription"].values()
            if sub["customer"] == customer_id
            for line in self.store.hidden_of(sub["id"]).get("pending_usage", [])
        )
        return invoiced + pending


def _add_to_totals(invoice: Obj, added: int) -> None:
    paid = invoice["status"] == "paid"
    invoice["subtotal"] += added
    invoice["subtotal_excluding_tax"] = invoice["subtotal"]
    invoice["total"] += added
    invoice["total_excluding_tax"] = invoice["total"]
    invoice["amount_due"] += added
    invoice["amount_paid"] = invoice["amount_due"] if paid else 0
    invoice["amount_remaining"] = 0 if paid else invoice["amount_due"]


def _item(sub: Obj, item_id: str) -> Obj:
    return next(item for item in sub["items"]["data"] if item["id"] == item_id)
