"""Meter event summaries (`GET /v1/billing/meters/{id}/event_summaries`).

As Stripe documents (docs.stripe.com/api/billing/meter-event-summary/list): `customer`,
`start_time` (inclusive) and `end_time` (exclusive) are required and aligned with minute
boundaries; `value_grouping_window` (`hour` or `day`) splits the range, otherwise one summary
covers it. Each summary's `aggregated_value` sums the customer's events stamped in its window
that Stripe has aggregated already: "Meters events are aggregated asynchronously so the meter
event summaries provide an eventually consistent view of the reported usage"
(`Meters.aggregation_delay`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import invalid, missing_param, no_such
from .forms import Params, as_choice, as_int, as_str, check_known
from .listing import LIST_PARAMS, paginate
from .meters import Meters
from .store import Obj

SUMMARY_LIST = (*LIST_PARAMS, "customer", "start_time", "end_time", "value_grouping_window")
WINDOWS = {"hour": 3600, "day": 86400}

Handler = Callable[..., dict[str, Any]]


def summary_routes(meters: Meters) -> list[tuple[str, re.Pattern[str], Handler]]:
    from .routes import _compile

    def handler(params: Params, meter: str) -> Obj:
        return event_summaries(meters, params, meter)

    return [("GET", _compile("/v1/billing/meters/{meter}/event_summaries"), handler)]


def _required_minute(params: Params, key: str) -> int:
    value = as_int(params, key)
    if value is None:
        raise missing_param(key)
    if value % 60:
        raise invalid(f"`{key}` must be aligned with minute boundaries.", key)
    return value


def event_summaries(meters: Meters, params: Params, meter: str) -> Obj:
    check_known(params, SUMMARY_LIST)
    found = meters.store.hidden_of("billing.meters").get(meter)
    if found is None:
        raise no_such("billing meter", meter)
    customer = as_str(params, "customer", required=True) or ""
    start = _required_minute(params, "start_time")
    end = _required_minute(params, "end_time")
    if end <= start:
        raise invalid("`end_time` must be after `start_time`.", "end_time")
    window = as_choice(params, "value_grouping_window", tuple(WINDOWS))
    step = WINDOWS[window] if window else end - start
    summaries = []
    at = start
    while at < end:
        until = min(at + step, end)
        value = meters.summed(found["event_name"], customer, start=at, end=until)
        summaries.append(
            {
                "id": f"mtrusg_{meter}_{customer}_{at}_{until}",
                "object": "billing.meter_event_summary",
                "aggregated_value": float(value),
                "end_time": until,
                "livemode": False,
                "meter": meter,
                "start_time": at,
            }
        )
        at = until
    # Newest window first, as Stripe lists.
    url = f"/v1/billing/meters/{meter}/event_summaries"
    return paginate(list(reversed(summaries)), params, url, "billing meter event summary")
