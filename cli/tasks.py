from __future__ import annotations

import typer
from celery.result import AsyncResult

from cli.common import console, run_task
from workers.celery_app import celery_app

app = typer.Typer(help="Enqueue tasks and look at them.", no_args_is_help=True)
run_app = typer.Typer(help="Run a scheduled job now.", no_args_is_help=True)
app.add_typer(run_app, name="run")


@app.command()
def ping(timeout: float = typer.Option(None, help="Seconds to wait for a worker")) -> None:
    """Enqueue a ping task and wait for a worker to answer it."""
    from tasks.maintenance import ping as ping_task

    answer = run_task(ping_task, timeout=timeout)
    console.print(f"✅ pong from worker on {answer['host']}")


@app.command()
def status(task_id: str) -> None:
    """Show a task's state (and its result or error when it has one)."""
    result = AsyncResult(task_id, app=celery_app)
    console.print(f"Task:   {task_id}")
    console.print(f"State:  {result.state}")
    if result.ready():
        console.print(f"Result: {result.result!r}")
