"""`billing`: operate Zemfyre Billing from the shell.

Start-up stays cheap for every command: the sub-command modules import only typer and rich at
the top, and each command imports the database, Celery, Stripe or the web stack it needs when it
runs (bench/usage_all.py times `billing usage --all` as a whole process).
"""

from __future__ import annotations

import sys

import typer

from cli import apikeys, audit, customers, db, keys, licenses, processes, stripe_cli, tasks, usage

app = typer.Typer(
    help="Zemfyre Billing: subscriptions, licenses and usage for Zemfyre instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(apikeys.app, name="apikey")
app.add_typer(tasks.app, name="tasks")
app.add_typer(customers.app, name="customer")
app.add_typer(licenses.app, name="license")
app.add_typer(keys.app, name="keys")
app.add_typer(stripe_cli.app, name="stripe")
app.command("usage")(usage.usage)
app.command("audit")(audit.audit)
for command in (processes.api, processes.worker, processes.beat, processes.flower, processes.dev):
    app.command()(command)


def main() -> None:
    """The `billing` entry point: database failures end in one clear line, not a traceback."""
    from cli.common import fail
    from core.errors import DomainError

    try:
        app()
    except DomainError as exc:
        # A missing or unusable setting (DATABASE_URL, STRIPE_SECRET_KEY...) is one line.
        raise SystemExit(fail(exc.message).exit_code) from None
    except Exception as exc:
        # A command that never imported SQLAlchemy cannot fail with its error: no import for it.
        sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
        if sqlalchemy_errors is None or not isinstance(exc, sqlalchemy_errors.DBAPIError):
            raise
        orig = exc.orig  # type: ignore[attr-defined]  # a DBAPIError, checked above
        detail = str(orig).strip().splitlines()[0] if orig else str(exc)
        hint = (
            " (run `billing db upgrade`)"
            if "no such table" in detail or "does not exist" in detail
            else ""
        )
        raise SystemExit(fail(f"database error: {detail}{hint}").exit_code) from None


if __name__ == "__main__":
    main()
