"""Structured JSON logs that carry a request or task id and never a secret."""

from __future__ import annotations

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Whatever grants access must never reach a log line: license JWTs, admin keys, Stripe secrets,
# bearer headers and PEM blocks. JWTs first, on their own: glued to another secret's characters
# they would otherwise be cut in two by that secret's match. The rest in one pattern, so a line
# is scanned twice, not six times (every request logs one).
JWTS = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
SECRETS = re.compile(
    "|".join(
        (
            r"(?i:bearer\s+[^\s\"',]+)",
            r"zbk_[A-Za-z0-9_-]{8,}",
            r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+",
            r"\bwhsec_[A-Za-z0-9_]+",
            r"(?s:-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----)",
        )
    )
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return SECRETS.sub(REDACTED, JWTS.sub(REDACTED, text))


@lru_cache(maxsize=2048)
def _redact_short(text: str) -> str:
    return redact(text)


def _redacted(text: str) -> str:
    """`redact`, remembered for short texts: the API's access log repeats the same few (method,
    route, path) on every request, and two scans of each cost more than the lookup."""
    return _redact_short(text) if len(text) <= _SHORT else redact(text)


_SHORT = 200


def _current_task_id() -> str | None:
    from celery._state import get_current_task

    task = get_current_task()
    if task is None or task.request is None:
        return None
    return task.request.id


# One encoder for every line: json.dumps(..., default=str) would build a new one each time.
_encode = json.JSONEncoder(default=str).encode
_EXTRA_FIELDS = ("method", "path", "status", "duration_ms", "client", "task", "outcome")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _redacted(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            # A request's line (the API logs one per request): no task to look up.
            entry["request_id"] = request_id
        else:
            task_id = _current_task_id()
            if task_id:
                entry["task_id"] = task_id
        fields = record.__dict__
        for key in _EXTRA_FIELDS:
            if key in fields:
                value = fields[key]
                # A path can carry what a client put in it (a key pasted into a URL).
                entry[key] = _redacted(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return _encode(entry)


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC to the millisecond; the date and time to the second are made once a
    second (the API logs every request)."""
    global _second
    second = int(created)
    cached, stamp = _second  # one read: other threads replace the pair whole
    if cached != second:
        stamp = datetime.fromtimestamp(second, UTC).isoformat()[:-6]  # without "+00:00"
        _second = (second, stamp)
    return f"{stamp}.{int((created - second) * 1000):03d}+00:00"


_second: tuple[int, str] = (-1, "")


class PlainFormatter(logging.Formatter):
    """For a terminal: one readable line, still redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    # No line shows where it was logged from or by which thread or process, so the records
    # need not find out (the logging HOWTO's "Optimization"): the API logs every request.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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
