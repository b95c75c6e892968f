"""The audit log: one entry per change, in the change's transaction, never changed afterwards."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import audit
from core.db import session_scope
from tests.conftest import pg_scalar


def test_an_entry_keeps_only_what_changed_and_who_changed_it() -> None:
    with session_scope() as session:
        audit.act_as(session, "alice@ops")
        entry = audit.record(
            session,
            "license.revoke",
            customer_id="cust_a",
            reason="chargeback",
            before={"revoked": False, "plan": "starter"},
            after={"revoked": True, "plan": "starter"},
        )
        entry_id = entry.id
    with session_scope() as session:
        [found] = audit.list_entries(session, audit.AuditFilter(customer_id="cust_a"))
    assert found.id == entry_id
    assert (found.actor, found.action) == ("alice@ops", "license.revoke")
    assert found.reason == "chargeback"
    assert found.before == {"revoked": False} and found.after == {"revoked": True}


def test_an_entry_rolls_back_with_its_change() -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        audit.record(session, "license.revoke", customer_id="cust_a")
        raise RuntimeError("the change failed")
    assert pg_scalar("SELECT count(*) FROM audit_log") == 0


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET reason = 'edited'", "DELETE FROM audit_log"]
)
def test_postgresql_refuses_to_change_or_remove_an_entry(statement: str) -> None:
    with session_scope() as session:
        audit.record(session, "license.revoke", customer_id="cust_a", reason="chargeback")
    with pytest.raises(DBAPIError, match="append-only"), session_scope() as session:
        session.execute(text(statement))
    assert pg_scalar("SELECT reason FROM audit_log") == "chargeback"


def test_a_change_with_no_actor_named_is_the_system() -> None:
    with session_scope() as session:
        audit.record(session, "license.reissue", customer_id="cust_a")
    assert pg_scalar("SELECT actor FROM audit_log") == "system"
