"""Device limits by plan and overrides, and the 80 % / 100 % threshold levels."""

from __future__ import annotations

from core.plans import UNLIMITED
from core.usage.limits import device_limit, threshold_level


def test_device_limit_follows_plan_and_enterprise_overrides() -> None:
    assert device_limit("trial", None) == 5
    assert device_limit("starter", None) == 10
    assert device_limit("professional", {"features": {"maxDevices": 500}}) == 50
    assert device_limit("enterprise", None) is None  # unlimited
    assert device_limit("enterprise", {"features": {"maxDevices": 500}}) == 500
    assert device_limit("enterprise", {"features": {"maxDevices": UNLIMITED}}) is None
    assert device_limit(None, None) is None


def test_threshold_levels_use_exact_integer_percentages() -> None:
    assert threshold_level(7, 10) == 0
    assert threshold_level(8, 10) == 80
    assert threshold_level(39, 50) == 0
    assert threshold_level(40, 50) == 80
    assert threshold_level(50, 50) == 100
    assert threshold_level(75, 50) == 100
    assert threshold_level(10**6, None) == 0
