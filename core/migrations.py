"""Run the Alembic migrations from code (the CLI, `billing dev` and the tests use this).

A downgrade is planned before it runs: which migrations it undoes and which tables and columns
those drop (read from each migration's `downgrade()`), so the CLI can say what would be lost and
ask first. Nothing here decides to drop data on its own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from core.errors import InvalidInputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BASE = "base"
ONE_STEP = "-1"


@dataclass
class DowngradePlan:
    """What `downgrade(target)` would do to the database as it is now."""

    target: str
    # (revision, its one-line description), newest first.
    undone: list[tuple[str, str]] = field(default_factory=list)
    dropped_tables: list[str] = field(default_factory=list)
    # "table.column"
    dropped_columns: list[str] = field(default_factory=list)
    # Rows in each dropped table, where they could be counted.
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def destructive(self) -> bool:
        return bool(self.dropped_tables or self.dropped_columns)

    @property
    def empties_database(self) -> bool:
        return self.target == BASE


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def _url(database_url: str | None) -> str:
    from core.settings import get_settings

    return database_url or get_settings().resolved_database_url


def _check_url(database_url: str | None) -> None:
    """An unusable DATABASE_URL is one clear ConfigurationError, not Alembic's traceback."""
    from core.db import engine_for

    engine_for(_url(database_url))


def upgrade(revision: str = "heads", database_url: str | None = None) -> None:
    _check_url(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(revision: str, database_url: str | None = None) -> None:
    """Run a downgrade; callers that take input use plan_downgrade() first and ask."""
    _check_url(database_url)
    command.downgrade(alembic_config(database_url), revision)


def current_heads(database_url: str | None = None) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    from core.db import engine_for

    engine = engine_for(_url(database_url))
    with engine.connect() as connection:
        return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def current_revision(database_url: str | None = None) -> str | None:
    """The applied revision(s), comma-separated while several branches are applied."""
    return ", ".join(current_heads(database_url)) or None


def plan_downgrade(revision: str = ONE_STEP, database_url: str | None = None) -> DowngradePlan:
    """Resolve `revision` (default: one step) and read what going there would drop."""
    _check_url(database_url)
    script = ScriptDirectory.from_config(alembic_config(database_url))
    heads = current_heads(database_url)
    if not heads:
        raise InvalidInputError("the database is at base already; nothing to downgrade")
    target = revision
    if revision == ONE_STEP:
        if len(heads) > 1:
            raise InvalidInputError(
                f"several migrations are applied side by side ({', '.join(heads)}); name the "
                "revision to go back to, e.g. `billing db downgrade <revision>`",
                field="revision",
            )
        newest = script.get_revision(heads[0])
        down = newest.down_revision
        # Undoing a merge steps back to the branches it joined: going down to any one of its
        # parents undoes the merge alone (Alembic finds "-1" from a merge ambiguous).
        target = down[0] if isinstance(down, tuple) else (down or BASE)
        undone = [newest]
    else:
        try:
            undone = list(script.iterate_revisions(heads, target))
        except Exception as exc:  # noqa: BLE001 - alembic's errors for unknown or ambiguous names
            message = f"cannot downgrade to {revision!r}: {exc}"
            raise InvalidInputError(message, field="revision") from exc
    plan = DowngradePlan(target=target)
    for step in undone:
        summary = (step.doc or "").strip().splitlines()
        plan.undone.append((step.revision, summary[0] if summary else ""))
        tables, columns = _drops_of(Path(step.path))
        plan.dropped_tables.extend(tables)
        plan.dropped_columns.extend(columns)
    plan.rows = _row_counts(plan.dropped_tables, database_url)
    return plan


def _drops_of(path: Path) -> tuple[list[str], list[str]]:
    """Tables and columns the migration's downgrade() drops, read from its source."""
    tree = ast.parse(path.read_text())
    downgrade_fn = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "downgrade"), None
    )
    if downgrade_fn is None:
        return [], []
    batch_tables: dict[str, str] = {}
    for node in ast.walk(downgrade_fn):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "batch_alter_table"
                    and isinstance(item.optional_vars, ast.Name)
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    batch_tables[item.optional_vars.id] = str(call.args[0].value)
    tables: list[str] = []
    columns: list[str] = []
    for node in ast.walk(downgrade_fn):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        names = [str(a.value) for a in node.args if isinstance(a, ast.Constant)]
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        if node.func.attr == "drop_table" and names:
            tables.append(names[0])
        elif node.func.attr == "drop_column":
            if owner in batch_tables and names:
                columns.append(f"{batch_tables[owner]}.{names[0]}")
            elif len(names) >= 2:
                columns.append(f"{names[0]}.{names[1]}")
    return tables, columns


def _row_counts(tables: list[str], database_url: str | None) -> dict[str, int]:
    from sqlalchemy import inspect, text

    from core.db import engine_for

    counts: dict[str, int] = {}
    engine = engine_for(_url(database_url))
    with engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
        for table in tables:
            if table in existing:
                # Table names come from our own migration files, never from input.
                count = connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
                counts[table] = int(count or 0)
    return counts
