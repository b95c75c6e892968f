"""/metrics: request figures per route, task outcomes, queue depth and inbox backlog."""

from __future__ import annotations

from tests.helpers.waiting import wait_until


def _metrics(api_client, headers) -> str:
    response = api_client.get("/metrics", headers=headers)
    assert response.status_code == 200
    return response.text


def test_metrics_need_an_admin_key(api_client) -> None:
    assert api_client.get("/metrics").status_code == 401


def test_requests_are_counted_by_route_template_and_status(api_client, admin_headers) -> None:
    api_client.get("/healthz")
    api_client.get("/no/such/route")
    text = _metrics(api_client, admin_headers)
    assert 'billing_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert (
        'billing_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}'
        in text
    )


def test_task_outcomes_queue_depth_and_inbox_backlog(
    api_client, admin_headers, celery_worker
) -> None:
    from tasks.maintenance import ping

    ping.apply_async().get(timeout=20)

    def counted() -> str | None:
        text = _metrics(api_client, admin_headers)
        line = 'billing_tasks_total{outcome="success",task="tasks.maintenance.ping"}'
        return text if line in text else None

    text = wait_until(counted)
    assert 'billing_queue_depth{queue="usage"}' in text
    assert 'billing_inbox_unprocessed{inbox="stripe_events"} 0.0' in text
    assert 'billing_inbox_unprocessed{inbox="usage_reports"} 0.0' in text
