"""`billing`: operate Zemfyre Billing from the shell."""

from __future__ import annotations

import typer

from cli import apikeys, db, processes, tasks

app = typer.Typer(
    help="Zemfyre Billing: subscriptions, licenses and usage for Zemfyre instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(apikeys.app, name="apikey")
app.add_typer(tasks.app, name="tasks")
for command in (processes.api, processes.worker, processes.beat, processes.flower, processes.dev):
    app.command()(command)


if __name__ == "__main__":
    app()
