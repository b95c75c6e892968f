"""`billing db`: migrations (a downgrade says what it would drop and asks before it drops it) and
pruning what is past retention."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cli.common import console, err_console, fail

if TYPE_CHECKING:
    from core.migrations import DowngradePlan

app = typer.Typer(help="Database migrations and retention.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("heads")) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from core import migrations

    migrations.upgrade(revision)
    console.print(f"✅ database at {migrations.current_revision() or 'base'}")


@app.command()
def downgrade(
    revision: str = typer.Argument(
        None, help="Revision to go back to (default: undo the newest migration only)"
    ),
    yes: bool = typer.Option(False, "--yes", help="Drop tables and columns without asking"),
) -> None:
    """Migrate the database down: by default one migration, never past the first one.

    A downgrade that drops tables or columns lists them (with their row counts) and asks for
    confirmation, or needs --yes. Emptying the database needs `base` named explicitly.
    """
    from core import migrations

    plan = migrations.plan_downgrade(revision or migrations.ONE_STEP)
    if plan.empties_database and revision != migrations.BASE:
        raise fail(
            "undoing the first migration drops every table (customers, licenses, usage); "
            "run `billing db downgrade base` if that is what you want"
        )
    if plan.destructive:
        _describe(plan)
        if not yes and not _confirmed():
            raise fail("downgrade cancelled; nothing was changed")
    migrations.downgrade(plan.target)
    console.print(f"✅ database at {migrations.current_revision() or 'base'}")


def _describe(plan: DowngradePlan) -> None:
    undone = ", ".join(revision for revision, _ in plan.undone)
    err_console.print(f"⚠  downgrading to {plan.target} undoes {undone} and drops:")
    for table in plan.dropped_tables:
        rows = plan.rows.get(table)
        err_console.print(f"   table {table}" + (f" ({rows} rows)" if rows is not None else ""))
    for column in plan.dropped_columns:
        err_console.print(f"   column {column}")


def _confirmed() -> bool:
    # No terminal to ask (a script, CI): the answer is no; --yes is the way to say yes there.
    try:
        return typer.confirm("Drop them?", default=False, err=True)
    except typer.Abort:
        return False


@app.command()
def current() -> None:
    """Print the database's migration revision."""
    from core import migrations

    console.print(migrations.current_revision() or "base")


@app.command()
def prune(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would go, per table, and change nothing"
    ),
) -> None:
    """Remove what is past retention, per table, in small batches (beat does it nightly)."""
    from cli.common import db_session
    from core.retention import pruning

    # Each batch is its own transaction, audited as cli:<OS user>.
    results = pruning.prune(db_session, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for result in results:
        console.print(
            f"{result.table}: {verb} {result.rows} ({result.what}) in {result.seconds:.1f} s"
        )
