"""`POST /v1/subscriptions/{id}/migrate`: a subscription's billing mode moved from classic to
flexible, one way (docs.stripe.com/api/subscriptions/migrate; "You can't migrate a subscription
from flexible billing mode to classic billing mode", docs.stripe.com/billing/subscriptions/
billing-mode). From then on a swapped or removed metered item's usage is billed with prorations
(usage_billing.py)."""

from __future__ import annotations

import re

from . import objects
from .errors import invalid
from .forms import Params, as_choice, as_dict, check_known
from .routes import Handler, _compile
from .store import Obj, Store

MIGRATE = {"billing_mode", "expand"}


class BillingModes:
    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        return [
            (
                "POST",
                _compile("/v1/subscriptions/{subscription}/migrate"),
                self.migrate_subscription,
            )
        ]

    def migrate_subscription(self, params: Params, subscription: str) -> Obj:
        check_known(params, MIGRATE)
        with self.store.lock:
            sub = self.store.get("subscription", subscription)
            mode = as_dict(params, "billing_mode")
            if mode is None:
                raise invalid("Missing required param: billing_mode.", "billing_mode")
            as_choice(mode, "type", ("flexible",), param="billing_mode[type]")
            if (sub.get("billing_mode") or {}).get("type") == "flexible":
                raise invalid(
                    "The subscription is already in flexible billing mode.", "billing_mode"
                )
            if sub["status"] == "canceled":
                raise invalid("A canceled subscription cannot be migrated.", "billing_mode")
            previous = {"billing_mode": self.store.snapshot(sub)["billing_mode"]}
            sub["billing_mode"] = objects.billing_mode("flexible", self.store.now())
            self.store.emit("customer.subscription.updated", sub, previous)
            return self.store.snapshot(sub)
