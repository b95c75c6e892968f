from __future__ import annotations

import typer

from cli.common import console

app = typer.Typer(help="Database migrations.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("heads")) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from core import migrations

    migrations.upgrade(revision)
    console.print(f"✅ database at {migrations.current_revision() or 'base'}")


@app.command()
def downgrade(revision: str = typer.Argument("-1")) -> None:
    """Migrate the database down to REVISION (default: one step; `base` empties it)."""
    from core import migrations

    migrations.downgrade(revision)
    console.print(f"✅ database at {migrations.current_revision() or 'base'}")


@app.command()
def current() -> None:
    """Print the database's migration revision."""
    from core import migrations

    console.print(migrations.current_revision() or "base")
