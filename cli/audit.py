"""`billing audit`: who changed what, newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from cli.common import console, db_session, fail, print_table

COLUMNS = (("When (UTC)", 16), ("Actor", 20), ("Action", 30), ("Customer", 22), ("Reason", 0))


def _change(before: dict | None, after: dict | None) -> str:
    parts = [
        f"{key}: {json.dumps((before or {}).get(key))} → {json.dumps(value)}"
        for key, value in (after or {}).items()
    ]
    return "; ".join(parts)


def audit(
    customer_id: str = typer.Option(None, "--customer", help="Only this customer's entries"),
    since: str = typer.Option(
        None, "--since", help="Only entries from this date (YYYY-MM-DD, UTC)"
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many"),
) -> None:
    """List audit entries: every change made from the console, the API or the CLI."""
    from core.audit import AuditFilter, list_entries

    since_at = None
    if since:
        try:
            since_at = datetime.fromisoformat(since)
        except ValueError as exc:
            raise fail(f"--since: {since!r} is not a date (YYYY-MM-DD)") from exc
        since_at = since_at.replace(tzinfo=since_at.tzinfo or UTC)
    wanted = AuditFilter(customer_id=customer_id, since=since_at)
    with db_session() as session:
        entries = list_entries(session, wanted, limit=limit)
        rows = [
            (
                f"{entry.created_at:%Y-%m-%d %H:%M}",
                entry.actor,
                entry.action,
                entry.customer_id or "-",
                " ".join(filter(None, [entry.reason, _change(entry.before, entry.after)])) or "-",
            )
            for entry in entries
        ]
    shown = print_table("Audit log (newest first):", COLUMNS, rows, "─" * 120)
    console.print(f"{shown} entr{'y' if shown == 1 else 'ies'}")
