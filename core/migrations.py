"""Run the Alembic migrations from code (the CLI, `billing dev` and the tests use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(revision: str = "heads", database_url: str | None = None) -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(revision: str, database_url: str | None = None) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from core.db import engine_for
    from core.settings import get_settings

    engine = engine_for(database_url or get_settings().resolved_database_url)
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
