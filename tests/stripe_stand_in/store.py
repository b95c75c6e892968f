"""The stand-in's in-memory state: object tables, the event log and hidden bookkeeping.

Every read and write happens under `Store.lock` (the HTTP dispatcher and the test helpers
both take it), so handlers can read-modify-write without further care.
"""

from __future__ import annotations

import copy
import marshal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import objects
from .errors import no_such
from .ids import new_id

Obj = dict[str, Any]

# Table name (Stripe's `object` value) -> the noun Stripe's "No such ..." messages use.
KINDS: dict[str, str] = {
    "customer": "customer",
    "product": "product",
    "price": "price",
    "coupon": "coupon",
    "promotion_code": "promotion code",
    "checkout.session": "checkout.session",
    "subscription": "subscription",
    "invoice": "invoice",
    "invoiceitem": "invoiceitem",
    "discount": "discount",
    "event": "event",
}

NO_REQUEST: Obj = {"id": None, "idempotency_key": None}

# Fields the stand-in keeps for its own bookkeeping but the pinned API version no longer shows
# (since 2025-03-31.basil): a subscription's period lives on its items, an invoice names its
# subscription under `parent.subscription_details`.
LEGACY_FIELDS: dict[str, tuple[str, ...]] = {
    "subscription": ("current_period_start", "current_period_end"),
    "invoice": ("subscription",),
}


class Store:
    def __init__(self, clock: Callable[[], float], api_version: str) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.api_version = api_version
        self.tables: dict[str, dict[str, Obj]] = {}
        self.events: list[Obj] = []
        self.item_owner: dict[str, str] = {}
        self.hidden: dict[str, Obj] = {}
        self.request: Obj = dict(NO_REQUEST)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tables = {kind: {} for kind in KINDS}
            self.events = []
            self.item_owner = {}
            self.hidden = {}
            self.request = dict(NO_REQUEST)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: a call that fails leaves no half-made change behind, as on Stripe.

        Events never change once emitted, so their log is copied shallowly; the rest deeply.
        """
        with self.lock:
            events = self.tables["event"]
            others = {kind: table for kind, table in self.tables.items() if kind != "event"}
            saved = _clone((others, self.item_owner, self.hidden))
            saved_events, saved_log = dict(events), list(self.events)
            try:
                yield
            except BaseException:
                tables, self.item_owner, self.hidden = saved
                self.tables = {**tables, "event": saved_events}
                self.events = saved_log
                raise

    def now(self) -> int:
        return int(self.clock())

    @contextmanager
    def acting_for(self, request_id: str | None, idempotency_key: str | None) -> Iterator[None]:
        """Events emitted inside carry `request: {id, idempotency_key}` of this API call."""
        previous = self.request
        self.request = {"id": request_id, "idempotency_key": idempotency_key}
        try:
            yield
        finally:
            self.request = previous

    def insert(self, obj: Obj) -> Obj:
        self.tables[obj["object"]][obj["id"]] = obj
        return obj

    def table(self, kind: str) -> dict[str, Obj]:
        return self.tables[kind]

    def get(
        self,
        kind: str,
        object_id: str,
        *,
        param: str = "id",
        status: int = 404,
        allow_deleted: bool = False,
    ) -> Obj:
        """A stored object; deleted ones (tombstones) only when `allow_deleted`."""
        found = self.tables[kind].get(object_id)
        if found is None or (found.get("deleted") and not allow_deleted):
            raise no_such(KINDS[kind], object_id, param=param, status=status)
        return found

    def referenced(self, kind: str, object_id: Any, param: str) -> Obj:
        """An object named by a body parameter: unknown ids are a 400, as on Stripe."""
        if not isinstance(object_id, str) or not object_id:
            raise no_such(KINDS[kind], str(object_id), param=param, status=400)
        return self.get(kind, object_id, param=param, status=400)

    def hidden_of(self, object_id: str) -> Obj:
        return self.hidden.setdefault(object_id, {})

    def newest_first(self, kind: str) -> list[Obj]:
        """The live objects of a table, newest first (Stripe's list order)."""
        return [obj for obj in reversed(self.tables[kind].values()) if not obj.get("deleted")]

    def snapshot(self, obj: Obj) -> Obj:
        """A deep copy as the API shows it now (embedded prices refreshed, legacy fields out)."""
        shown = copy.deepcopy(obj)
        _drop_legacy(shown)
        if shown.get("object") == "subscription":
            for item in shown["items"]["data"]:
                current = self.tables["price"].get(item["price"]["id"])
                if current is not None:
                    item["price"] = copy.deepcopy(current)
                    item["plan"] = objects.plan_from_price(current)
        elif shown.get("object") in ("promotion_code", "discount") and "coupon" in shown:
            current = self.tables["coupon"].get(shown["coupon"]["id"])
            if current is not None and not current.get("deleted"):
                shown["coupon"] = copy.deepcopy(current)
        return shown

    def find_any(self, object_id: str) -> Obj | None:
        """Any stored object by id, for `expand`."""
        for kind in KINDS:
            found = self.tables[kind].get(object_id)
            if found is not None:
                return self.snapshot(found)
        owner = self.item_owner.get(object_id)
        if owner is not None:
            for item in self.snapshot(self.tables["subscription"][owner])["items"]["data"]:
                if item["id"] == object_id:
                    return item
        return None

    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        event = objects.event(
            new_id("evt"),
            self.now(),
            event_type,
            self.snapshot(obj),
            api_version=self.api_version,
            previous=previous,
            request=self.request,
        )
        self.events.append(event)
        self.tables["event"][event["id"]] = event
        return event


def _drop_legacy(shown: Obj) -> None:
    for name in LEGACY_FIELDS.get(shown.get("object") or "", ()):
        shown.pop(name, None)


def _clone(value: Any) -> Any:
    """A deep copy of plain JSON-like data (dicts, lists, str, numbers), much faster than
    `copy.deepcopy` for the whole store."""
    return marshal.loads(marshal.dumps(value))


def changed_attributes(before: Obj, after: Obj) -> Obj:
    """Stripe's `previous_attributes`: the earlier values of the top-level keys that changed."""
    return {key: before.get(key) for key in after if before.get(key) != after.get(key)}
