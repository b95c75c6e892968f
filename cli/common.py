"""What every CLI command shares: the console, a database session, waiting on a task.

Every `billing` command imports this module, so it stays cheap: the database, Celery and the
settings are imported when a command uses them, never at start-up (bench/usage_all.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from core.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

console = Console(highlight=False)
# soft_wrap: an error stays one line, however narrow the terminal (or pipe) is.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
RULE = "─" * 41


def _cell(value: object, width: int) -> str:
    # A positive width pads on the right, a negative one aligns right, 0 leaves the cell as is.
    text = str(value)
    return f"{text:<{width}}" if width > 0 else f"{text:>{-width}}" if width < 0 else text


def print_table(
    title: str,
    columns: Sequence[tuple[str, int]],
    rows: Iterable[Sequence[object]],
    rule: str,
) -> int:
    """A listing: its title, then the header and rows between rules, none of them wrapped.

    `columns` are (heading, width) pairs that lay out the header and every row alike; the
    rows printed are counted."""
    console.print(title)
    console.print(rule)
    console.print(" | ".join(_cell(heading, width) for heading, width in columns), soft_wrap=True)
    console.print(rule)
    count = 0
    for row in rows:
        cells = (_cell(value, width) for value, (_, width) in zip(row, columns, strict=True))
        console.print(" | ".join(cells), soft_wrap=True)
        count += 1
    console.print(rule)
    return count


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]✗[/red] {message}")
    return typer.Exit(code)


@contextmanager
def db_session() -> Iterator[Session]:
    from core.audit import act_as, cli_actor
    from core.db import session_scope

    try:
        with session_scope() as session:
            # What the command changes is audited as done by cli:<OS user>.
            act_as(session, cli_actor())
            yield session
    except DomainError as exc:
        raise fail(exc.message) from exc


def run_task(task_name: str, *args: Any, timeout: float | None = None) -> Any:
    """Enqueue a task by its name (workers/task_names.py) and wait for a worker to run it,
    saying clearly when none answers."""
    import celery.exceptions

    from core.settings import get_settings
    from workers.celery_app import celery_app

    timeout = timeout if timeout is not None else get_settings().cli_task_timeout_seconds
    try:
        result = celery_app.send_task(task_name, args=args, retry=False)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        raise fail(f"could not reach the broker ({exc}); is Redis running?") from exc
    try:
        return result.get(timeout=timeout, propagate=True)
    except celery.exceptions.TimeoutError as exc:
        raise fail(
            f"no worker answered within {timeout:.0f}s (task {result.id} stays queued); "
            "start one with `billing worker` or `billing dev`",
            code=2,
        ) from exc
    except DomainError as exc:
        raise fail(exc.message) from exc


def field_line(label: str, value: object) -> str:
    return f"{label + ':':<18}{value if value not in (None, '') else '-'}"
