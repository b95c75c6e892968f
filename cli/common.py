"""What every CLI command shares: the console, a database session, waiting on a task.

Every `billing` command imports this module, so it stays cheap: the database, Celery and the
settings are imported when a command uses them, never at start-up (bench/usage_all.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from core.errors import DomainError

if TYPE_CHECKING:
    from celery import Task
    from sqlalchemy.orm import Session

console = Console(highlight=False)
# soft_wrap: an error stays one line, however narrow the terminal (or pipe) is.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
RULE = "─" * 41


def print_table(title: str, header: str, lines: list[str], rule: str) -> None:
    """A listing: its title, then the header and lines between rules, none of them wrapped."""
    console.print(title)
    console.print(rule)
    console.print(header, soft_wrap=True)
    console.print(rule)
    for line in lines:
        console.print(line, soft_wrap=True)
    console.print(rule)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]✗[/red] {message}")
    return typer.Exit(code)


@contextmanager
def db_session() -> Iterator[Session]:
    from core.db import session_scope

    try:
        with session_scope() as session:
            yield session
    except DomainError as exc:
        raise fail(exc.message) from exc


def run_task(task: Task, *args: Any, timeout: float | None = None) -> Any:
    """Enqueue a task and wait for a worker to run it, saying clearly when none answers."""
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    from core.settings import get_settings

    timeout = timeout if timeout is not None else get_settings().cli_task_timeout_seconds
    try:
        result = task.apply_async(args=args, retry=False)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        raise fail(f"could not reach the broker ({exc}); is Redis running?") from exc
    try:
        return result.get(timeout=timeout, propagate=True)
    except CeleryTimeoutError as exc:
        raise fail(
            f"no worker answered within {timeout:.0f}s (task {result.id} stays queued); "
            "start one with `billing worker` or `billing dev`",
            code=2,
        ) from exc
    except DomainError as exc:
        raise fail(exc.message) from exc


def field_line(label: str, value: object) -> str:
    return f"{label + ':':<18}{value if value not in (None, '') else '-'}"
