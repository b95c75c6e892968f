"""The event log over the API: `GET /v1/events` and `GET /v1/events/{id}`."""

from __future__ import annotations

from .errors import invalid, only_one_of
from .forms import Params, as_list, as_str, check_known
from .listing import LIST_PARAMS, in_range, paginate
from .store import Obj, Store

EVENT_LIST = {*LIST_PARAMS, "created", "delivery_success", "type", "types"}


class Events:
    def __init__(self, store: Store) -> None:
        self.store = store

    def retrieve_event(self, params: Params, event: str) -> Obj:
        return self.store.get("event", event)

    def list_events(self, params: Params) -> Obj:
        check_known(params, EVENT_LIST)
        wanted = _wanted_types(params)
        items = [
            e
            for e in self.store.newest_first("event")
            if (not wanted or any(type_matches(e["type"], w) for w in wanted))
            and in_range(e["created"], params.get("created"), "created")
        ]
        return paginate(items, params, "/v1/events", "event")


def _wanted_types(params: Params) -> list[str]:
    single = as_str(params, "type")
    many = [str(t) for t in as_list(params, "types")]
    if single and many:
        raise only_one_of("type", "types")
    if len(many) > 20:
        raise invalid("You may pass at most 20 event types.", "types")
    return [single] if single else many


def type_matches(event_type: str, pattern: str) -> bool:
    """`customer.subscription.*` style wildcards, as the `type` filter accepts."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern
