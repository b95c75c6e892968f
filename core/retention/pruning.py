"""`billing db prune` and the nightly beat job: every prune step in turn, or what it would do.

On PostgreSQL a table that lost rows is vacuumed right after its step (plain VACUUM without
truncation: it takes no lock that inserts, reads or row updates wait for), so the space of the
removed rows is reused by the next day's rows and the table and its indexes stay the size of
the retention window instead of waiting for autovacuum's 20 % of dead rows (bench/growth.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import audit
from core.db import Transaction, get_engine
from core.retention.steps import PRUNE_STEPS
from core.settings import get_settings
from models import utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TablePruned:
    table: str
    what: str
    # Rows removed (or, in a dry run, that would be).
    rows: int
    # Seconds in all, and of them the VACUUM after the step.
    seconds: float
    vacuum_seconds: float = 0.0


def prune(
    transaction: Transaction, *, dry_run: bool = False, now: datetime | None = None
) -> list[TablePruned]:
    """Every step: its rows past retention counted (`dry_run`, nothing changes) or removed."""
    now = now or utcnow()
    batch_size = get_settings().prune_batch_size
    results = []
    for step in PRUNE_STEPS:
        started = time.perf_counter()
        vacuum_seconds = 0.0
        if dry_run:
            with transaction() as session:
                rows = step.count(session, now)
        else:
            rows = step.prune(transaction, now, batch_size)
            if rows:
                # Removing data is audited (as the transaction's actor: cli:<user>, or system
                # for the nightly job), once per table and run.
                with transaction() as session:
                    audit.record(
                        session,
                        "retention.prune",
                        reason=step.what,
                        after={"table": step.table, "rows": rows},
                    )
                vacuum_started = time.perf_counter()
                vacuum(step.table)
                vacuum_seconds = time.perf_counter() - vacuum_started
        seconds = time.perf_counter() - started
        results.append(TablePruned(step.table, step.what, rows, seconds, vacuum_seconds))
    return results


def vacuum(table: str) -> None:
    """VACUUM `table` on PostgreSQL; skipped when autovacuum is at it already."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        try:
            # As long as it takes (it only reads and frees pages); waiting for another vacuum
            # of the table gives up at once.
            connection.execute(text("SET statement_timeout = 0"))
            connection.execute(text("SET lock_timeout = '1s'"))
            # TRUNCATE false: giving empty trailing pages back to the file system would take an
            # exclusive lock that the ingress's inserts wait for; the space is reused anyway.
            connection.execute(text(f'VACUUM (ANALYZE, TRUNCATE false) "{table}"'))
        except DBAPIError as exc:
            logger.warning("vacuum of %s skipped: %s", table, str(exc.orig).strip())
