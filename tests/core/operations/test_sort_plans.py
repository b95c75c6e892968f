"""Every sort the console's big tables offer reads an index in that order (no sort of what a
whole table holds: PostgreSQL's plan with sorting made costly still has none; an incremental
sort, of rows tied on the index's order, is fine), and the events list's pages follow each other
in any sort."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from core.billing import inbox
from core.customers.search import CustomerSearch, search_customers
from core.db import get_engine, session_scope
from core.operations.stripe_events import EventFilter, list_events, parse_cursor

# A full sort node; "Incremental Sort" (ties of an index's order) is not one.
FULL_SORT = re.compile(r"(^|->)\s*Sort\s+\(", re.M)


@contextmanager
def _statements() -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def log(_conn, _cursor, statement, parameters, *_):  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", log)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", log)


def _plans(run: Callable[[Any], object]) -> list[str]:
    """The plans of the ordered statements `run(session)` sends, with sorting made as costly
    as PostgreSQL makes it (enable_sort off): a plan still sorting has no index to read."""
    with session_scope() as session:
        with _statements() as seen:
            run(session)
        plans = []
        for statement, parameters in seen:
            if "ORDER BY" not in statement:
                continue
            raw = session.connection().connection.dbapi_connection
            with raw.cursor() as cursor:
                cursor.execute("SET LOCAL enable_sort = off")
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("EXPLAIN " + statement, parameters)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return plans


@pytest.mark.parametrize("sort", ["-created", "customer", "email", "company", "-company"])
def test_the_customers_list_reads_its_order_from_an_index(sort: str) -> None:
    plans = _plans(lambda session: search_customers(session, CustomerSearch(sort=sort)))
    assert plans and not any(FULL_SORT.search(plan) for plan in plans), plans


@pytest.mark.parametrize("sort", ["-created", "type", "-type", "state", "-state"])
def test_the_events_list_reads_its_order_from_an_index(sort: str) -> None:
    plans = _plans(lambda session: list_events(session, EventFilter(sort=sort, before=None)))
    assert plans and not any(FULL_SORT.search(plan) for plan in plans), plans


def test_pages_of_events_sorted_by_type_follow_each_other() -> None:
    with session_scope() as session:
        for number in range(7):
            inbox.store_event(
                session,
                {
                    "id": f"evt_{number}",
                    "object": "event",
                    "type": ("invoice.paid", "customer.updated", "charge.refunded")[number % 3],
                    "created": 1_800_000_000 + number % 2,  # ties on created, broken by id
                    "data": {"object": {}},
                },
            )
    for sort in ("type", "-type", "state", "-created"):
        with session_scope() as session:
            whole = [row.event_id for row in list_events(session, EventFilter(sort=sort))]
            paged: list[str] = []
            before = None
            while True:
                page = list_events(session, EventFilter(sort=sort, before=before), limit=3)
                if not page:
                    break
                paged += [row.event_id for row in page]
                before = parse_cursor(page[-1].cursor)
        assert paged == whole and len(whole) == 7, sort
    with session_scope() as session:
        types = [row.type for row in list_events(session, EventFilter(sort="type"))]
    assert types == sorted(types)
