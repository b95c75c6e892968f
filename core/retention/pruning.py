"""`billing db prune` and the nightly beat job: every prune step in turn, or what it would do."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from core.retention.steps import PRUNE_STEPS, Transaction
from core.settings import get_settings
from models import utcnow


@dataclass(frozen=True, slots=True)
class TablePruned:
    table: str
    what: str
    # Rows removed (or, in a dry run, that would be).
    rows: int
    seconds: float


def prune(
    transaction: Transaction, *, dry_run: bool = False, now: datetime | None = None
) -> list[TablePruned]:
    """Every step: its rows past retention counted (`dry_run`, nothing changes) or removed."""
    now = now or utcnow()
    batch_size = get_settings().prune_batch_size
    results = []
    for step in PRUNE_STEPS:
        started = time.perf_counter()
        if dry_run:
            with transaction() as session:
                rows = step.count(session, now)
        else:
            rows = step.prune(transaction, now, batch_size)
        results.append(TablePruned(step.table, step.what, rows, time.perf_counter() - started))
    return results
