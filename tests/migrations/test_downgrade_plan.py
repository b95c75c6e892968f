"""Planning a downgrade: what `billing db downgrade` undoes by default and what it would drop."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core import migrations

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MERGE = '''"""merge the branches"""
revision = "9999_merge"
down_revision = {parents!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


@pytest.fixture
def merged_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of the migrations with every head joined by a merge, as the lead's merge will."""
    from alembic.script import ScriptDirectory

    shutil.copytree(PROJECT_ROOT / "migrations", tmp_path / "migrations")
    shutil.copy(PROJECT_ROOT / "alembic.ini", tmp_path / "alembic.ini")
    monkeypatch.setattr(migrations, "PROJECT_ROOT", tmp_path)
    heads = tuple(sorted(ScriptDirectory.from_config(migrations.alembic_config()).get_heads()))
    if len(heads) > 1:
        merge = tmp_path / "migrations" / "versions" / "9999_merge.py"
        merge.write_text(MERGE.format(parents=heads))
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    migrations.upgrade("heads", url)
    return url


def test_the_default_step_undoes_only_the_newest_migration(merged_project: str) -> None:
    before = migrations.current_heads(merged_project)
    assert len(before) == 1
    plan = migrations.plan_downgrade(database_url=merged_project)
    assert [revision for revision, _ in plan.undone] == list(before)
    assert not plan.empties_database
    migrations.downgrade(plan.target, merged_project)
    after = migrations.current_heads(merged_project)
    assert after and after != before


def test_a_plan_to_base_lists_every_table_with_its_rows(merged_project: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(merged_project)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (name, prefix, key_hash, created_at) "
                "VALUES ('k', 'zbk_ab', 'h', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    plan = migrations.plan_downgrade("base", merged_project)
    assert plan.empties_database and plan.destructive
    assert {"customers", "licenses", "usage_reports", "api_keys"} <= set(plan.dropped_tables)
    assert plan.rows["api_keys"] == 1 and plan.rows["customers"] == 0
