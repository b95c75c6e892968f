"""Rate-limit counters a test set up, removed again (Redis keys and remembered denials)."""

from __future__ import annotations

from core.settings import get_settings


def forget_counters() -> None:
    import redis

    from core.rate_limit import current_limiter

    settings = get_settings()
    client = redis.Redis.from_url(settings.resolved_broker_url)
    for key in client.scan_iter(match=f"{settings.celery_key_prefix}ratelimit:*"):
        client.delete(key)
    current_limiter().forget_denials()
