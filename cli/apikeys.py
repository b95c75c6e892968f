from __future__ import annotations

import typer

from cli.common import console, db_session

app = typer.Typer(help="Admin API keys.", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Option(..., "--name", help="Who or what uses the key"),
    role: str = typer.Option(
        "operator", "--role", help="operator (reads and changes) or viewer (reads only)"
    ),
) -> None:
    """Create an admin API key. The key is printed once and only its hash is kept."""
    from core import api_keys

    with db_session() as session:
        created = api_keys.create_api_key(session, name, role)
    console.print(f"✅ API key {created.id} ({created.role}) created for {created.name}")
    console.print("Store it now, it is not shown again:")
    console.print(created.key, soft_wrap=True)


@app.command("list")
def list_keys() -> None:
    """List admin API keys (never the keys themselves)."""
    from rich.table import Table

    from core import api_keys

    with db_session() as session:
        rows = api_keys.list_api_keys(session)
    table = Table("ID", "Name", "Role", "Prefix", "Created", "Last used", "Revoked")
    for row in rows:
        table.add_row(
            str(row.id),
            row.name,
            row.role,
            row.prefix + "…",
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "-",
            f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "-",
        )
    console.print(table)


@app.command()
def revoke(key_id: int = typer.Argument(..., help="The key's ID from `apikey list`")) -> None:
    """Revoke an admin API key; it stops working at once, and its console sessions end."""
    from core import api_keys

    with db_session() as session:
        row = api_keys.revoke_api_key(session, key_id)
    console.print(f"✅ API key {row.id} ({row.name}) revoked")
