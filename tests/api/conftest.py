"""Fixtures the API tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import get_settings
from tests.helpers.rate_limits import forget_counters


@pytest.fixture
def tight_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RATE_LIMIT_UNAUTHENTICATED_PER_CLIENT", "5")
    monkeypatch.setenv("RATE_LIMIT_USAGE_PER_INSTANCE", "3")
    monkeypatch.setenv("RATE_LIMIT_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    forget_counters()
