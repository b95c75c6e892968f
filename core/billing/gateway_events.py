"""The gateway's event calls (`StripeGateway` inherits them): Stripe's snapshot events (v1) and
the v2 events behind thin events, read one by one or listed for reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import stripe

Obj = dict[str, Any]


class EventCalls:
    client: stripe.StripeClient

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _iterate(self, list_fn: Any, params: Obj, *args: Any) -> Iterator[Obj]:
        raise NotImplementedError

    def retrieve_event(self, event_id: str) -> Obj:
        return self._call(self.client.v1.events.retrieve, event_id)

    def retrieve_thin_event(self, event_id: str) -> Obj:
        """The full v2 event behind a thin event delivered without its data."""
        return self._call(self.client.v2.core.events.retrieve, event_id)

    def list_events(self, *, created_gte: int, types: list[str] | None = None) -> Iterator[Obj]:
        """Every event created at or after `created_gte`, newest first, all pages."""
        params: Obj = {"created": {"gte": created_gte}, "limit": 100}
        if types:
            params["types"] = types
        return self._iterate(self.client.v1.events.list, params)

    def list_thin_events(self, *, created_gte: int, types: list[str]) -> list[Obj]:
        """Every v2 event of `types` created at or after `created_gte`, newest first, all pages
        (`GET /v2/core/events`, which goes back 30 days and pages by `next_page_url`;
        docs.stripe.com/api/v2/core/events/list). Each as `retrieve_thin_event` returns it."""
        since = datetime.fromtimestamp(created_gte, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        params: Obj = {"created": {"gte": since}, "types": types, "limit": 100}

        def every_page() -> list[Obj]:
            listed = self.client.v2.core.events.list(params=params)
            return [event.to_dict() for event in listed.auto_paging_iter()]

        return list(self._call(every_page))
