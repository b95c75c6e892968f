"""Billing meters and meter events (`/v1/billing/meters`, `/v1/billing/meter_events`).

Stripe's behaviour that matters to a sender of usage, kept here:

- a meter names the event it sums (`event_name`, one active meter per name), how an event names its
  customer (`customer_mapping`, by Stripe customer id under a payload key) and its value
  (`value_settings`);
- a meter event whose `identifier` Stripe took within the last 24 hours is refused with a 400
  (`An event already exists with identifier …`), which is how a resend after a lost answer is
  recognised; after that Stripe has forgotten it and takes it again, billing it twice
  ("We will enforce uniqueness within a rolling period of at least 24 hours",
  docs.stripe.com/api/billing/meter-event/create, `identifier`); `timestamp` must lie within the
  past 35 days and at most 5 minutes ahead;
- events are validated asynchronously: one naming a customer Stripe does not know is accepted,
  never counted, and reported in a `v1.billing.meter.error_report_triggered` thin event (its
  details, with sample identifiers, read from `/v2/core/events/{id}`;
  docs.stripe.com/api/v2/core/events/object). The stand-in reports when a test calls
  `report_meter_errors()`, as Stripe does after its validation window;
- a metered price (`recurring[usage_type]=metered`) must name its meter (`recurring[meter]`).

State lives in the store's hidden bookkeeping, so `reset()` and the all-or-nothing transactions
cover it like every other table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import StripeError, invalid, missing_param, no_such
from .forms import Params, as_choice, as_dict, as_int, as_str, check_known
from .ids import new_id
from .listing import LIST_PARAMS, paginate
from .store import Obj, Store

METER_CREATE = (
    "customer_mapping",
    "default_aggregation",
    "display_name",
    "event_name",
    "event_time_window",
    "expand",
    "value_settings",
)
METER_LIST = (*LIST_PARAMS, "status")
EVENT_CREATE = ("event_name", "expand", "identifier", "payload", "timestamp")
FORMULAS = ("count", "last", "sum")
MAX_EVENT_AGE_SECONDS = 35 * 86400
MAX_EVENT_AHEAD_SECONDS = 5 * 60
DEDUPLICATION_SECONDS = 24 * 3600

Handler = Callable[..., dict[str, Any]]


# How many invalid events an error report names per error type (the rest only counted).
ERROR_SAMPLES = 3


class Meters:
    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def aggregation_delay(self) -> float:
        """Seconds after its arrival (by the store's clock) before an event is aggregated: Stripe
        processes meter events asynchronously, so summaries and invoices may miss recent ones
        (docs.stripe.com/billing/subscriptions/usage-based/recording-usage). 0: at once."""
        return float(self.store.hidden_of("billing.meter_settings").get("delay", 0.0))

    # -- state -----------------------------------------------------------------------------

    @property
    def _meters(self) -> dict[str, Obj]:
        return self.store.hidden_of("billing.meters")

    @property
    def _accepted(self) -> dict[str, Obj]:
        """Accepted meter events in arrival order, each with what the asynchronous validation
        found (`unknown_customer`) and whether it was reported; keyed by an id of the stand-in's
        own, as an identifier may come back after 24 hours."""
        return self.store.hidden_of("billing.meter_events")

    @property
    def _events(self) -> dict[str, Obj]:
        return {key: entry["event"] for key, entry in self._accepted.items()}

    @property
    def _thin_events(self) -> dict[str, Obj]:
        """The full v2 events behind the thin events delivered (`/v2/core/events/{id}`)."""
        return self.store.hidden_of("v2.core.events")

    def routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        # Imported here: routes imports the catalog, which imports this module.
        from .routes import _compile

        table: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/billing/meters", self.create_meter),
            ("GET", "/v1/billing/meters", self.list_meters),
            ("GET", "/v1/billing/meters/{meter}", self.retrieve_meter),
            ("POST", "/v1/billing/meter_events", self.create_meter_event),
            ("GET", "/v2/core/events/{event}", self.retrieve_thin_event),
        ]
        return [(method, _compile(template), handler) for method, template, handler in table]

    # -- meters ----------------------------------------------------------------------------

    def create_meter(self, params: Params) -> Obj:
        check_known(params, METER_CREATE)
        display_name = as_str(params, "display_name", required=True)
        event_name = as_str(params, "event_name", required=True) or ""
        aggregation = as_dict(params, "default_aggregation")
        if aggregation is None:
            raise missing_param("default_aggregation")
        formula = as_choice(aggregation, "formula", FORMULAS, param="default_aggregation[formula]")
        if formula is None:
            raise missing_param("default_aggregation[formula]")
        mapping = as_dict(params, "customer_mapping") or {}
        mapping_type = as_choice(mapping, "type", ("by_id",), param="customer_mapping[type]")
        if mapping and mapping_type is None:
            raise missing_param("customer_mapping[type]")
        values = as_dict(params, "value_settings") or {}
        if self.active_meter(event_name) is not None:
            raise invalid(f"A meter with event_name `{event_name}` already exists.", "event_name")
        now = self.store.now()
        meter = {
            "id": new_id("mtr"),
            "object": "billing.meter",
            "created": now,
            "customer_mapping": {
                "event_payload_key": as_str(mapping, "event_payload_key") or "stripe_customer_id",
                "type": "by_id",
            },
            "default_aggregation": {"formula": formula},
            "display_name": display_name,
            "event_name": event_name,
            "event_time_window": as_choice(params, "event_time_window", ("day", "hour")),
            "livemode": False,
            "status": "active",
            "status_transitions": {"deactivated_at": None},
            "updated": now,
            "value_settings": {"event_payload_key": as_str(values, "event_payload_key") or "value"},
        }
        self._meters[meter["id"]] = meter
        return meter

    def list_meters(self, params: Params) -> Obj:
        check_known(params, METER_LIST)
        status = as_choice(params, "status", ("active", "inactive"))
        items = [
            meter
            for meter in reversed(self._meters.values())
            if status is None or meter["status"] == status
        ]
        return paginate(items, params, "/v1/billing/meters", "billing meter")

    def retrieve_meter(self, params: Params, meter: str) -> Obj:
        found = self._meters.get(meter)
        if found is None:
            raise no_such("billing meter", meter)
        return found

    def active_meter(self, event_name: str) -> Obj | None:
        for meter in self._meters.values():
            if meter["event_name"] == event_name and meter["status"] == "active":
                return meter
        return None

    # -- meter events ----------------------------------------------------------------------

    def create_meter_event(self, params: Params) -> Obj:
        check_known(params, EVENT_CREATE)
        event_name = as_str(params, "event_name", required=True) or ""
        payload = as_dict(params, "payload")
        if not payload:
            raise missing_param("payload")
        now = self.store.now()
        timestamp = as_int(params, "timestamp")
        if timestamp is None:
            timestamp = now
        if timestamp < now - MAX_EVENT_AGE_SECONDS:
            raise invalid("Timestamp must be within the past 35 calendar days.", "timestamp")
        if timestamp > now + MAX_EVENT_AHEAD_SECONDS:
            raise invalid("Timestamp must not be more than 5 minutes in the future.", "timestamp")
        identifier = as_str(params, "identifier") or new_id("mev")
        if self._taken_recently(identifier, now):
            raise StripeError(
                400,
                f"An event already exists with identifier {identifier}.",
                should_retry=False,
            )
        meter = self.active_meter(event_name)
        unknown_customer = False
        if meter is not None:
            unknown_customer = self._check_payload(meter, payload)
        event = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": event_name,
            "identifier": identifier,
            "livemode": False,
            "payload": {str(key): str(value) for key, value in payload.items()},
            "timestamp": timestamp,
        }
        entry = {
            "event": event,
            "unknown_customer": unknown_customer,
            "reported": False,
            "received": self.store.clock(),
        }
        self._accepted[new_id("mev")] = entry
        return event

    def _taken_recently(self, identifier: str, now: int) -> bool:
        return any(
            event["identifier"] == identifier and event["created"] > now - DEDUPLICATION_SECONDS
            for event in self._events.values()
        )

    def _check_payload(self, meter: Obj, payload: Params) -> bool:
        """Refuse what Stripe refuses at once; True when the event names a customer Stripe does
        not know (accepted now, reported by the asynchronous validation, never counted)."""
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        if not payload.get(customer_key):
            raise missing_param(f"payload[{customer_key}]")
        customer = self.store.tables["customer"].get(str(payload[customer_key]))
        if customer is not None and customer.get("deleted"):
            # Events of a customer deleted in Stripe are refused, however often they are sent.
            raise no_such(
                "customer", str(payload[customer_key]), param=f"payload[{customer_key}]", status=400
            )
        value = payload.get(value_key)
        if meter["default_aggregation"]["formula"] != "count":
            if value is None:
                raise missing_param(f"payload[{value_key}]")
            if not re.fullmatch(r"-?\d+(\.\d+)?", str(value)):
                raise invalid(
                    f"The value `{value}` is not a valid number.", f"payload[{value_key}]"
                )
        return customer is None

    # -- asynchronous validation -----------------------------------------------------------

    def report_meter_errors(self) -> list[Obj]:
        """Stripe's validation window closes: one thin `v1.billing.meter.error_report_triggered`
        event per meter with events not reported yet that named no known customer; the thin
        events (as delivered to an event destination)."""
        thin_events = []
        for meter in self._meters.values():
            entries = [
                entry
                for entry in self._accepted.values()
                if entry["event"]["event_name"] == meter["event_name"]
                and entry["unknown_customer"]
                and not entry["reported"]
            ]
            if not entries:
                continue
            for entry in entries:
                entry["reported"] = True
            thin_events.append(self._error_report(meter, [entry["event"] for entry in entries]))
        return thin_events

    def _error_report(self, meter: Obj, invalid_events: list[Obj]) -> Obj:
        now = self.store.now()
        customer_key = meter["customer_mapping"]["event_payload_key"]
        samples = [
            {
                "error_message": f"Customer {event['payload'].get(customer_key)} not found.",
                "request": {"identifier": event["identifier"]},
            }
            # Stripe names only a sample of each error type's events, not all of them
            # (`sample_errors`, docs.stripe.com/api/v2/core/events/event-types).
            for event in invalid_events[:ERROR_SAMPLES]
        ]
        count = len(invalid_events)
        thin = {
            "id": new_id("evt"),
            "object": "v2.core.event",
            "context": None,
            "created": _iso(now),
            "livemode": False,
            "reason": None,
            "related_object": {
                "id": meter["id"],
                "type": "billing.meter",
                "url": f"/v1/billing/meters/{meter['id']}",
            },
            "type": "v1.billing.meter.error_report_triggered",
        }
        full = {
            **thin,
            "data": {
                "developer_message_summary": f"There {'is' if count == 1 else 'are'} "
                f"{count} invalid event{'' if count == 1 else 's'}",
                "reason": {
                    "error_count": count,
                    "error_types": [
                        {
                            "code": "meter_event_customer_not_found",
                            "error_count": count,
                            "sample_errors": samples,
                        }
                    ],
                },
                "validation_end": _iso(now),
                "validation_start": _iso(min(event["created"] for event in invalid_events)),
            },
        }
        self._thin_events[thin["id"]] = full
        self.store.events.append(thin)
        return thin

    def retrieve_thin_event(self, params: Params, event: str) -> Obj:
        found = self._thin_events.get(event)
        if found is None:
            raise no_such("event", event)
        return found

    # -- test helpers ----------------------------------------------------------------------

    def events(self) -> list[Obj]:
        return list(self._events.values())

    def summed(
        self,
        event_name: str,
        stripe_customer_id: str,
        *,
        start: int | None = None,
        end: int | None = None,
    ) -> Decimal:
        """What the meter of `event_name` holds for a customer: the sum of its valid events'
        values, of those stamped in [start, end) when given (Stripe's meter event summaries),
        of those aggregated already (`aggregation_delay`).
        Not what is billed: that depends on the subscription's items and billing mode
        (`UsageBilling.billed`)."""
        meter = self.active_meter(event_name)
        if meter is None:
            return Decimal(0)
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        total = Decimal(0)
        aggregated_by = self.store.clock() - self.aggregation_delay
        for entry in self._accepted.values():
            event = entry["event"]
            if event["event_name"] != event_name or entry["unknown_customer"]:
                continue
            if entry.get("received", 0) > aggregated_by:
                continue  # not aggregated yet
            if start is not None and event["timestamp"] < start:
                continue
            if end is not None and event["timestamp"] >= end:
                continue
            if event["payload"].get(customer_key) != stripe_customer_id:
                continue
            try:
                total += Decimal(event["payload"].get(value_key, "0"))
            except InvalidOperation:
                continue
        return total


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def price_meter(store: Store, meter_id: str | None, usage_type: str, label: str) -> str | None:
    """Check a price's `recurring[meter]`: required for metered prices, refused otherwise."""
    if usage_type != "metered":
        if meter_id:
            raise invalid(
                "A meter can only be set on prices with `usage_type=metered`.", f"{label}[meter]"
            )
        return None
    if not meter_id:
        raise invalid(
            "Metered prices must be backed by a meter: set `recurring[meter]`.", f"{label}[meter]"
        )
    if meter_id not in store.hidden_of("billing.meters"):
        raise no_such("billing meter", meter_id, param=f"{label}[meter]", status=400)
    return meter_id


def metered_line(price: Obj, entry: Params, label: str) -> bool:
    """Whether a checkout line or subscription item sells a metered price. Such a line takes no
    quantity (the meter counts); the stand-in keeps quantity 0 for it, so it adds nothing to the
    flat amounts it invoices."""
    if (price.get("recurring") or {}).get("usage_type") != "metered":
        return False
    if entry.get("quantity") not in (None, ""):
        raise invalid(
            "Quantity should not be specified where usage_type is `metered`. "
            f"Remove quantity from `{label}`.",
            f"{label}[quantity]",
        )
    return True
