"""core.customers: creation in one transaction, case-insensitive uniqueness, idempotent retries."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from core.billing.trials import get_subscription
from core.customers.service import create_customer, get_customer
from core.db import new_session, session_scope
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.licensing.service import current_license
from tests.conftest import pg_scalar


def test_create_customer_writes_customer_trial_and_license_together() -> None:
    with session_scope() as session:
        customer = create_customer(session, email="one@acme.example", name="One")
        cid = customer.customer_id
    with session_scope() as session:
        assert get_customer(session, cid).email == "one@acme.example"
        subscription = get_subscription(session, cid)
        assert subscription is not None and subscription.status == "trialing"
        row = current_license(session, cid)
        assert row is not None and row.plan == "trial"


def test_bad_input_writes_nothing() -> None:
    with pytest.raises(InvalidInputError) as bad_email, session_scope() as session:
        create_customer(session, email="nope")
    assert bad_email.value.field == "email"
    with pytest.raises(InvalidInputError) as bad_plan, session_scope() as session:
        create_customer(session, email="x@acme.example", plan="ultra")
    assert bad_plan.value.field == "plan"
    assert pg_scalar("SELECT count(*) FROM customers") == 0
    assert pg_scalar("SELECT count(*) FROM licenses") == 0


def test_unknown_customer_names_the_field() -> None:
    with pytest.raises(NotFoundError) as missing, session_scope() as session:
        get_customer(session, "cust_missing")
    assert missing.value.field == "customerId"


def test_retry_with_the_same_customer_id_returns_the_same_customer() -> None:
    with session_scope() as session:
        create_customer(session, email="r@acme.example", customer_id="cust_fixedid0001")
    with session_scope() as session:
        again = create_customer(session, email="R@acme.example", customer_id="cust_fixedid0001")
        assert again.customer_id == "cust_fixedid0001"
    assert pg_scalar("SELECT count(*) FROM customers") == 1
    assert pg_scalar("SELECT count(*) FROM licenses") == 1


def test_concurrent_insert_of_the_same_email_is_a_conflict_not_a_crash() -> None:
    """The second insert cannot see the first (uncommitted) row, so only the unique index stops
    it: that IntegrityError must become the same 409 as the pre-check."""
    first = new_session()
    create_customer(first, email="race@acme.example")
    outcome: dict[str, BaseException | None] = {}

    def second() -> None:
        try:
            with session_scope() as session:
                # The first commit also bumps the license change counter, which a worker task
                # left running by an earlier test may hold for a moment: wait past the default.
                session.execute(text("SET LOCAL lock_timeout = '30s'"))
                create_customer(session, email="RACE@acme.example")
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)  # blocked on the unique index until the first commits
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert isinstance(outcome.get("error"), ConflictError)
    assert outcome["error"].field == "email"  # type: ignore[union-attr]
    assert pg_scalar("SELECT count(*) FROM customers") == 1
