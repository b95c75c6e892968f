"""The customer portal (`/v1/billing_portal/sessions` and `/configurations`) and disputes
(charges, disputes and the `charge.dispute.*` events a test raises with
`StripeStandIn.dispute_latest_invoice`).

A portal session shows what its configuration allows; one created without `configuration` gets
the account's default, which the Dashboard makes and which lets customers switch plans
(docs.stripe.com/api/customer_portal/configurations/object, `is_default`; the stand-in's default
has `subscription_update` enabled, as the Dashboard's is unless someone turned it off).

State lives in the store's hidden bookkeeping, so `reset()` and the all-or-nothing transactions
cover it like every other table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import invalid, missing_param, no_such
from .forms import (
    Params,
    as_bool,
    as_choice,
    as_dict,
    as_list,
    as_metadata,
    as_str,
    check_known,
    merge_metadata,
)
from .ids import new_id, random_token
from .listing import LIST_PARAMS, paginate
from .store import Obj, Store

PORTAL_CREATE = ("configuration", "customer", "expand", "flow_data", "locale", "on_behalf_of",
                 "return_url")  # fmt: skip
CONFIGURATION_CREATE = ("business_profile", "default_return_url", "expand", "features",
                        "login_page", "metadata", "name")  # fmt: skip
CONFIGURATION_UPDATE = (*CONFIGURATION_CREATE, "active")
CONFIGURATION_LIST = (*LIST_PARAMS, "active", "is_default")
FEATURES = ("customer_update", "invoice_history", "payment_method_update", "subscription_cancel",
            "subscription_update")  # fmt: skip
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
            ("POST", "/v1/billing_portal/configurations", self.create_configuration),
            ("GET", "/v1/billing_portal/configurations", self.list_configurations),
            ("GET", "/v1/billing_portal/configurations/{configuration}", self.retrieve_config),
            ("POST", "/v1/billing_portal/configurations/{configuration}", self.update_config),
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
        named = as_str(params, "configuration")
        configuration = self._default() if named is None else self._configurations.get(named)
        if configuration is None:
            raise no_such("configuration", str(named), param="configuration", status=400)
        if not configuration["active"]:
            raise invalid(f"The configuration {named} is not active.", "configuration")
        session_id = new_id("bps")
        found: Obj = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": configuration["id"],
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

    # -- portal configurations -------------------------------------------------------------

    @property
    def _configurations(self) -> dict[str, Obj]:
        return self.store.hidden_of("billing_portal.configurations")

    def _default(self) -> Obj:
        """The account's default configuration, as the Dashboard made it: plan switching on."""
        for found in self._configurations.values():
            if found["is_default"]:
                return found
        default = self._new_configuration(
            {
                "customer_update": {"enabled": True, "allowed_updates": ["email", "address"]},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "proration_behavior": "create_prorations",
                },
            },
            is_default=True,
        )
        return default

    def create_configuration(self, params: Params) -> Obj:
        check_known(params, CONFIGURATION_CREATE)
        features = as_dict(params, "features")
        if features is None:
            raise missing_param("features")
        found = self._new_configuration(features, is_default=False)
        self._apply_configuration(found, {k: v for k, v in params.items() if k != "features"})
        return found

    def _new_configuration(self, features: Params, *, is_default: bool) -> Obj:
        now = self.store.now()
        found: Obj = {
            "id": new_id("bpc"),
            "object": "billing_portal.configuration",
            "active": True,
            "application": None,
            "business_profile": {
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
            },
            "created": now,
            "default_return_url": None,
            "features": {
                "customer_update": {"allowed_updates": [], "enabled": False},
                "invoice_history": {"enabled": False},
                "payment_method_update": {"enabled": False},
                "subscription_cancel": {
                    "cancellation_reason": {"enabled": False, "options": []},
                    "enabled": False,
                    "mode": "at_period_end",
                    "proration_behavior": "none",
                },
                "subscription_update": {
                    "default_allowed_updates": [],
                    "enabled": False,
                    "proration_behavior": "none",
                },
            },
            "is_default": is_default,
            "livemode": False,
            "login_page": {"enabled": False, "url": None},
            "metadata": {},
            "name": None,
            "updated": now,
        }
        self._apply_features(found, features, creating=True)
        self._configurations[found["id"]] = found
        return found

    def _apply_features(self, found: Obj, features: Params, *, creating: bool) -> None:
        check_known(features, FEATURES)
        for name in FEATURES:
            given = as_dict(features, name, param=f"features[{name}]")
            if given is None:
                continue
            label = f"features[{name}]"
            current = found["features"][name]
            enabled = as_bool(given, "enabled", param=f"{label}[enabled]")
            if enabled is None and creating:
                raise missing_param(f"{label}[enabled]")
            if enabled is not None:
                current["enabled"] = enabled
            if "mode" in given:
                modes = ("at_period_end", "immediately")
                current["mode"] = as_choice(given, "mode", modes, param=f"{label}[mode]")
            if "proration_behavior" in given:
                behaviors = ("always_invoice", "create_prorations", "none")
                current["proration_behavior"] = as_choice(
                    given, "proration_behavior", behaviors, param=f"{label}[proration_behavior]"
                )
            for listed in ("allowed_updates", "default_allowed_updates"):
                if listed in given:
                    current[listed] = [str(v) for v in as_list(given, listed)]

    def _apply_configuration(self, found: Obj, params: Params) -> None:
        features = as_dict(params, "features")
        if features is not None:
            self._apply_features(found, features, creating=False)
        if "default_return_url" in params:
            found["default_return_url"] = as_str(params, "default_return_url")
        if "name" in params:
            found["name"] = as_str(params, "name")
        active = as_bool(params, "active")
        if active is not None:
            found["active"] = active
        found["metadata"] = merge_metadata(found["metadata"], as_metadata(params))
        found["updated"] = self.store.now()

    def list_configurations(self, params: Params) -> Obj:
        check_known(params, CONFIGURATION_LIST)
        self._default()
        active, is_default = as_bool(params, "active"), as_bool(params, "is_default")
        items = [
            found
            for found in reversed(self._configurations.values())
            if (active is None or found["active"] == active)
            and (is_default is None or found["is_default"] == is_default)
        ]
        return paginate(
            items, params, "/v1/billing_portal/configurations", "billing portal configuration"
        )

    def retrieve_config(self, params: Params, configuration: str) -> Obj:
        found = self._configurations.get(configuration)
        if found is None:
            raise no_such("configuration", configuration)
        return found

    def update_config(self, params: Params, configuration: str) -> Obj:
        check_known(params, CONFIGURATION_UPDATE)
        found = self.retrieve_config(params, configuration)
        self._apply_configuration(found, params)
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
