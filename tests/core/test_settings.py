"""The one settings object: every setting is documented in .env.example, URLs are normalised."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_every_setting_is_in_env_example_and_nothing_else() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    # Read by docker-compose.yml, not by the service.
    compose_only = {"POSTGRES_PASSWORD"}
    assert fields - documented == set(), "settings missing from .env.example"
    assert documented - fields - compose_only == set(), ".env.example names unknown settings"


def test_postgres_urls_use_the_installed_psycopg2_driver() -> None:
    def resolved(url: str) -> str:
        return Settings(database_url=url).resolved_database_url

    assert (
        resolved("postgresql://u:p@db:5432/billing") == "postgresql+psycopg2://u:p@db:5432/billing"
    )
    assert resolved("postgres://u:p@db/billing") == "postgresql+psycopg2://u:p@db/billing"
    assert resolved("postgresql+psycopg2://u@db/b") == "postgresql+psycopg2://u@db/b"
    assert resolved("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
