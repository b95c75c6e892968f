"""The usage viewer's summary arithmetic and its window of days."""

from __future__ import annotations

from datetime import UTC, datetime

from core.viewer.queries import build_summary, window_start

NOW = datetime(2025, 10, 21, 12, 0, tzinfo=UTC)


def test_summary_matches_the_seed_example() -> None:
    # SEED: 7 reports averaging 39.4, peak 42, current 42/45, professional (50 devices).
    summary = build_summary(
        total_reports=7,
        avg_active=276 / 7,
        peak_active=42,
        current_active=42,
        current_total=45,
        instances=1,
        limit=50,
    )
    assert summary.avg_active == 39.4
    assert summary.remaining == 8
    assert summary.utilization == 84.0
    assert summary.warning is not None and "84.0% of device limit used" in summary.warning


def test_summary_for_unlimited_and_quiet_customers() -> None:
    unlimited = build_summary(
        total_reports=1,
        avg_active=10_000,
        peak_active=10_000,
        current_active=10_000,
        current_total=10_000,
        instances=1,
        limit=None,
    )
    assert (unlimited.remaining, unlimited.utilization, unlimited.warning) == (None, None, None)
    quiet = build_summary(
        total_reports=0,
        avg_active=None,
        peak_active=None,
        current_active=0,
        current_total=0,
        instances=0,
        limit=5,
    )
    assert (quiet.avg_active, quiet.remaining, quiet.utilization, quiet.warning) == (
        None,
        5,
        0.0,
        None,
    )
    over = build_summary(
        total_reports=1,
        avg_active=6,
        peak_active=6,
        current_active=6,
        current_total=6,
        instances=1,
        limit=5,
    )
    assert over.remaining == 0 and over.utilization == 120.0
    assert over.warning is not None and over.warning.startswith("OVER LIMIT")


def test_window_is_the_last_n_utc_days_today_included() -> None:
    assert window_start(1, NOW) == datetime(2025, 10, 21, tzinfo=UTC)
    assert window_start(7, NOW) == datetime(2025, 10, 15, tzinfo=UTC)
