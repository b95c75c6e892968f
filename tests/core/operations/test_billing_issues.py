"""Resolving a billing issue with a note, from the service and the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from core import audit
from core.billing import issues
from core.customers.service import create_customer
from core.db import session_scope
from core.errors import InvalidInputError, NotFoundError


def _dispute() -> int:
    with session_scope() as session:
        customer_id = create_customer(session, email="ops@acme.io").customer_id
        issue = issues.record_dispute(
            session, customer_id, {"id": "dp_1", "charge": "ch_1", "amount": 2900}
        )
        return issue.id


def test_a_resolved_issue_keeps_who_and_the_note_and_leaves_the_open_list() -> None:
    issue_id = _dispute()
    with session_scope() as session, pytest.raises(InvalidInputError) as blank:
        issues.resolve_issue(session, issue_id, "  ")
    assert blank.value.field == "note"
    with session_scope() as session, pytest.raises(NotFoundError):
        issues.resolve_issue(session, 999, "won")

    with session_scope() as session:
        audit.act_as(session, "alice@ops")
        issues.resolve_issue(session, issue_id, "won: evidence accepted")
    with session_scope() as session:
        # Again: nothing changes, the first resolution stays.
        audit.act_as(session, "bob@ops")
        again = issues.resolve_issue(session, issue_id, "other note")
        assert (again.resolved_by, again.resolution_note) == ("alice@ops", "won: evidence accepted")
        assert issues.recent_issues(session) == []
        assert [i.id for i in issues.recent_issues(session, resolved=True)] == [issue_id]
        entries = audit.list_entries(session, audit.AuditFilter(actor="alice@ops"))
        assert [(e.action, e.actor, e.reason) for e in entries] == [
            ("billing_issue.resolve", "alice@ops", "won: evidence accepted")
        ]


def test_the_cli_resolves_an_issue_with_a_note() -> None:
    issue_id = _dispute()
    done = CliRunner().invoke(app, ["stripe", "resolve-issue", str(issue_id), "--note", "refunded"])
    assert done.exit_code == 0, done.output
    assert "dispute dp_1 resolved by cli:" in done.output
    with session_scope() as session:
        assert issues.recent_issues(session, resolved=True)[0].resolution_note == "refunded"
