"""The customer portal (`POST /v1/billing_portal/sessions`) and disputes (charges, disputes and
the `charge.dispute.*` events a test raises with `StripeStandIn.dispute_latest_invoice`).

State lives in the store's hidden bookkeeping, so `reset()` and the all-or-nothing transactions
cover it like every other table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import invalid, missing_param, no_such
from .forms import Params, as_str, check_known
from .ids import new_id, random_token
from .store import Obj, Store

PORTAL_CREATE = ("configuration", "customer", "expand", "flow_data", "locale", "on_behalf_of",
                 "return_url")  # fmt: skip
DISPUTE_STATUSES = ("warning_needs_response", "warning_under_review", "warning_closed",
                    "needs_response", "under_review", "won", "lost")  # fmt: skip

Handler = Callable[..., dict[str, Any]]


class PortalAndDisputes:
    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        from .routes import _compile

        table: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/billing_portal/sessions", self.create_portal_session),
            ("GET", "/v1/charges/{charge}", self.retrieve_charge),
            ("GET", "/v1/disputes/{dispute}", self.retrieve_dispute),
        ]
        return [(method, _compile(template), handler) for method, template, handler in table]

    # -- customer portal -------------------------------------------------------------------

    def create_portal_session(self, params: Params) -> Obj:
        check_known(params, PORTAL_CREATE)
        customer_id = as_str(params, "customer")
        if not customer_id:
            raise missing_param("customer")
        self.store.referenced("customer", customer_id, "customer")
        return_url = as_str(params, "return_url")
        if return_url is not None and not return_url.startswith(("http://", "https://")):
            raise invalid("Not a valid URL", "return_url", code="url_invalid")
        session_id = new_id("bps")
        found: Obj = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": "bpc_standin",
            "created": self.store.now(),
            "customer": customer_id,
            "flow": None,
            "livemode": False,
            "locale": None,
            "on_behalf_of": None,
            "return_url": return_url,
            "url": f"https://billing.stripe.com/p/session/test_{random_token(40)}",
        }
        self.store.hidden_of("billing_portal.sessions")[session_id] = found
        return found

    # -- charges and disputes --------------------------------------------------------------

    @property
    def _charges(self) -> dict[str, Obj]:
        return self.store.hidden_of("charges")

    @property
    def _disputes(self) -> dict[str, Obj]:
        return self.store.hidden_of("disputes")

    def retrieve_charge(self, params: Params, charge: str) -> Obj:
        found = self._charges.get(charge)
        if found is None:
            raise no_such("charge", charge)
        return found

    def retrieve_dispute(self, params: Params, dispute: str) -> Obj:
        found = self._disputes.get(dispute)
        if found is None:
            raise no_such("dispute", dispute)
        return found

    def dispute_invoice(self, invoice_id: str, reason: str = "fraudulent") -> list[Obj]:
        """The payer's bank disputes the charge of a paid invoice: `charge.dispute.created`."""
        invoice = self.store.get("invoice", invoice_id)
        if invoice["status"] != "paid" or not invoice["amount_paid"]:
            raise invalid(f"Invoice {invoice_id} has no charge to dispute.")
        mark = len(self.store.events)
        now = self.store.now()
        charge_id = new_id("ch")
        self._charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": invoice["amount_paid"],
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "created": now,
            "disputed": True,
            "paid": True,
            "status": "succeeded",
        }
        dispute_id = new_id("dp")
        dispute = {
            "id": dispute_id,
            "object": "dispute",
            "amount": invoice["amount_paid"],
            "charge": charge_id,
            "created": now,
            "currency": invoice["currency"],
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": None,
            "reason": reason,
            "status": "needs_response",
        }
        self._disputes[dispute_id] = dispute
        self.store.emit("charge.dispute.created", dispute)
        return self.store.events[mark:]

    def close_dispute(self, dispute_id: str, status: str) -> list[Obj]:
        """The bank decides (`won` or `lost`): `charge.dispute.closed`."""
        if status not in ("won", "lost"):
            raise invalid("status must be won or lost", "status")
        dispute = self._disputes.get(dispute_id)
        if dispute is None:
            raise no_such("dispute", dispute_id)
        mark = len(self.store.events)
        dispute["status"] = status
        self.store.emit("charge.dispute.closed", dispute, {"status": "needs_response"})
        return self.store.events[mark:]
