"""The beat schedule: periodic jobs. Each job is a task that is safe to run twice."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}
