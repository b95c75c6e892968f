"""Structured JSON logs that carry a request or task id and never a secret."""

from __future__ import annotations

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Whatever grants access must never reach a log line: license JWTs, admin keys, Stripe secrets,
# bearer headers and PEM blocks.
SECRET_PATTERNS = [
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r"zbk_[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+"),
    re.compile(r"\bwhsec_[A-Za-z0-9_]+"),
    re.compile(r"(?i)bearer\s+[^\s\"',]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
]
REDACTED = "[redacted]"


def redact(text: str) -> str:
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _current_task_id() -> str | None:
    from celery._state import get_current_task

    task = get_current_task()
    if task is None or task.request is None:
        return None
    return task.request.id


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        task_id = _current_task_id()
        if task_id:
            entry["task_id"] = task_id
        for key in ("method", "path", "status", "duration_ms", "client", "task", "outcome"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    """For a terminal: one readable line, still redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    formatter: dict[str, object] = (
        {"()": JsonFormatter}
        if json_output
        else {"()": PlainFormatter, "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"default": formatter},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "default"},
            },
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            "loggers": {
                # Requests are logged once, by our middleware, with their request id.
                "uvicorn.access": {"level": "WARNING"},
                "uvicorn.error": {"level": level.upper()},
            },
        }
    )
