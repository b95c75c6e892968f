"""Meter event summaries, and the aggregation delay that makes them (and invoices) lag behind
the meter events just received, as Stripe's asynchronous processing does."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.stripe_stand_in import start_stand_in


def test_event_summaries_count_an_event_only_once_aggregated() -> None:
    now = (int(time.time()) // 60) * 60
    clock = [float(now)]
    server = start_stand_in(clock=lambda: clock[0])
    try:
        client = server.client()
        meter = client.v1.billing.meters.create(
            params={
                "display_name": "Overage",
                "event_name": "overage",
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
                "value_settings": {"event_payload_key": "value"},
            }
        )
        customer = client.v1.customers.create(params={"email": "summary@example.com"}).id

        def send(identifier: str, value: int, at: int) -> None:
            payload = {"stripe_customer_id": customer, "value": str(value)}
            client.v1.billing.meter_events.create(
                params={"event_name": "overage", "identifier": identifier, "payload": payload,
                        "timestamp": at}
            )  # fmt: skip

        def summaries(**extra: object) -> list[tuple[int, int, float]]:
            params = {"customer": customer, "start_time": now - 7200, "end_time": now + 60}
            found = client.v1.billing.meters.event_summaries.list(
                meter.id, params={**params, **extra}
            )
            return [(s.start_time, s.end_time, s.aggregated_value) for s in found.data]

        send("a", 3, now - 5400)
        assert summaries() == [(now - 7200, now + 60, 3.0)]
        clock[0] += 60
        server.set_meter_aggregation_delay(30)
        send("b", 4, now - 60)
        # Received, not aggregated yet: neither the summary nor an hourly window counts it.
        assert summaries() == [(now - 7200, now + 60, 3.0)]
        clock[0] += 30
        assert summaries() == [(now - 7200, now + 60, 7.0)]
        # Hourly windows, newest first.
        assert summaries(value_grouping_window="hour") == [
            (now, now + 60, 0.0),
            (now - 3600, now, 4.0),
            (now - 7200, now - 3600, 3.0),
        ]
        with pytest.raises(stripe.InvalidRequestError) as unaligned:
            summaries(start_time=now - 7199)
        assert unaligned.value.param == "start_time"
    finally:
        server.stop()
