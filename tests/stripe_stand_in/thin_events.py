"""The v2 event list, `GET /v2/core/events` (docs.stripe.com/api/v2/core/events/list).

Thin events (v2) reach an event destination without their data; Stripe also lists them: "List
events, going back up to 30 days", newest first, filtered by `created` (`gt`, `gte`, `lt`,
`lte`, RFC 3339 times), `object_id` (the related object) and `types` (up to 20 names), `limit`
per page; a page links the next by `next_page_url` (v2 lists page by URL, not by
`starting_after`). Each item is the event as `GET /v2/core/events/{id}` returns it. The events
are those `Meters.report_meter_errors` made (the store's hidden "v2.core.events").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from .errors import invalid
from .forms import Params, as_dict, as_int, as_list, as_str, check_known
from .ids import new_id
from .store import Obj, Store

LIST_PARAMS = ("created", "limit", "object_id", "page", "types")
KEEP_SECONDS = 30 * 86400
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
Handler = Callable[..., dict[str, Any]]


class ThinEvents:
    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        from .routes import _compile

        return [("GET", _compile("/v2/core/events"), self.list_thin_events)]

    def list_thin_events(self, params: Params) -> Obj:
        check_known(params, LIST_PARAMS)
        pages = self.store.hidden_of("v2.core.events.pages")
        offset = 0
        token = as_str(params, "page")
        if token is not None:
            if token not in pages:
                raise invalid(f"Invalid page: {token}", "page")
            params, offset = pages[token]["params"], pages[token]["offset"]
        limit = as_int(params, "limit", minimum=1) or DEFAULT_LIMIT
        if limit > MAX_LIMIT:
            raise invalid(f"limit must be at most {MAX_LIMIT}.", "limit")
        found = [event for event in self._newest_first() if _matches(event, params)]
        page = found[offset : offset + limit]
        next_url = None
        if offset + limit < len(found):
            following = new_id("page")
            pages[following] = {"params": params, "offset": offset + limit}
            next_url = "/v2/core/events?" + urlencode({"page": following})
        return {"data": page, "next_page_url": next_url, "previous_page_url": None}

    def _newest_first(self) -> list[Obj]:
        events = reversed(self.store.hidden_of("v2.core.events").values())
        oldest = self.store.now() - KEEP_SECONDS
        kept = [event for event in events if _epoch(event["created"]) >= oldest]
        # Newest first; of one second's, the later made first (a stable sort keeps that).
        return sorted(kept, key=lambda event: _epoch(event["created"]), reverse=True)


def _matches(event: Obj, params: Params) -> bool:
    types = [str(name) for name in as_list(params, "types")]
    if len(types) > 20:
        raise invalid("You may pass at most 20 event types.", "types")
    if types and event["type"] not in types:
        return False
    object_id = as_str(params, "object_id")
    if object_id is not None and (event.get("related_object") or {}).get("id") != object_id:
        return False
    created = as_dict(params, "created") or {}
    at = _epoch(event["created"])
    bounds: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    for name, holds in bounds.items():
        if name in created and not holds(at, _bound(created[name], f"created[{name}]")):
            return False
    return True


def _epoch(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def _bound(value: Any, param: str) -> int:
    try:
        return _epoch(str(value))
    except ValueError:
        raise invalid(f"Invalid timestamp (RFC 3339 expected): {value}", param) from None
