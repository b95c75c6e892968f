"""Device limits and how full a plan is: the one place that owns the 80 % / 100 % thresholds.

Processing records threshold crossings with `threshold_level`; the viewer shows the same numbers
with `utilisation_percent` and `warning_for`. Both read the thresholds from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.plans import UNLIMITED, UnknownPlanError, get_plan, plan_for_features

WARNING_PERCENT = 80
OVER_PERCENT = 100
# Thresholds of the device limit that are recorded when usage rises past them, lowest first.
THRESHOLDS = (WARNING_PERCENT, OVER_PERCENT)


def device_limit(plan: str | None, overrides: Mapping[str, Any] | None) -> int | None:
    """The plan's device limit with the customer's overrides; None = unlimited or unknown plan."""
    if plan is None:
        return None
    try:
        spec = get_plan(plan)
        features, _ = plan_for_features(spec, overrides)
    except (UnknownPlanError, ValueError):
        # A bad stored override must not stop usage processing; fall back to the catalogue.
        try:
            features = get_plan(plan).features
        except UnknownPlanError:
            return None
    if features.max_devices >= UNLIMITED:
        return None
    return features.max_devices


def threshold_level(active: int, limit: int | None) -> int:
    """The highest threshold (0, 80, 100) that `active` devices reach on `limit`."""
    if limit is None:
        return 0
    level = 0
    for threshold in THRESHOLDS:
        # Integer arithmetic: 40 of 50 is exactly 80%, never 79.99999%.
        if active * 100 >= threshold * limit:
            level = threshold
    return level


def utilisation_percent(active: int, limit: int | None) -> float | None:
    if limit is None:
        return None
    if limit == 0:
        # Nothing may run on a zero limit, so it is always full (and never a division by zero).
        return 100.0
    return round(active * 100 / limit, 1)


def warning_for(utilization: float | None) -> str | None:
    """The viewer's warning line for a utilisation, at the same thresholds as the alerts."""
    if utilization is None:
        return None
    if utilization >= OVER_PERCENT:
        return f"OVER LIMIT: {utilization:.1f}% of device limit used! Upgrade to a higher plan."
    if utilization >= WARNING_PERCENT:
        return (
            f"WARNING: {utilization:.1f}% of device limit used! "
            "Consider upgrading to a higher plan."
        )
    return None
