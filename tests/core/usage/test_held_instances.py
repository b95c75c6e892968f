"""New instances beyond a customer's cap are held: stored and listed, but counted in no device
total, threshold or overage bill until an operator accepts them (service and `billing usage`)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from core.billing.metering.days import day_overages
from core.db import session_scope
from core.errors import NotFoundError
from core.settings import get_settings
from core.usage.held_instances import accept_instances, held_instances
from core.usage.processing import process_reports
from core.usage.rollups import rollup_day
from core.usage.snapshots import current_devices
from models import AuditEntry, InstanceUsage, utcnow
from tests.core.billing.test_metering import paying_customer, record, recorded_events, report

# Yesterday: finished (so it can be metered) and recent (so its snapshots count as current).
DAY = utcnow().astimezone(UTC).date() - timedelta(days=1)
START = datetime.combine(DAY, time.min, tzinfo=UTC)


@pytest.fixture
def cap_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "usage_new_instances_per_window", 2)


def _process() -> None:
    with session_scope() as session:
        process_reports(session)


def _current_active(customer_id: str) -> int:
    current = current_devices([customer_id], now=utcnow())
    with session_scope() as session:
        return int(session.execute(select(current.c.active)).scalar() or 0)


def _overage(customer_id: str) -> int:
    with session_scope() as session:
        rollup_day(session, DAY)
        owed = [row for row in day_overages(session, DAY) if row.customer_id == customer_id]
    return owed[0].overage if owed else 0


def test_instances_beyond_the_cap_count_nowhere_until_accepted(cap_of_two) -> None:
    customer_id = paying_customer("fleet@example.com")  # starter: 10 devices
    # Four instances appear, 10 devices each: only the first two count.
    for n in range(4):
        report(customer_id, f"i-{n}", 10, START + timedelta(hours=n + 1))
    _process()
    with session_scope() as session:
        held = [row.instance_id for row in held_instances(session, customer_id)]
    assert held == ["i-2", "i-3"]
    assert _current_active(customer_id) == 20
    assert _overage(customer_id) == 10  # 20 - 10, not 40 - 10
    assert record(DAY) == 1
    assert [value for _, value, _, _ in recorded_events(customer_id)] == [10]

    # A known instance reporting again stays as it is; the held ones keep being held.
    report(customer_id, "i-0", 10, START + timedelta(hours=8))
    report(customer_id, "i-3", 10, START + timedelta(hours=8))
    _process()
    with session_scope() as session:
        assert [row.instance_id for row in held_instances(session, customer_id)] == held

    with session_scope() as session:
        assert accept_instances(session, customer_id, ["i-2"]) == ["i-2"]
        # Again: already counted, nothing changes.
        assert accept_instances(session, customer_id, ["i-2"]) == []
    assert _current_active(customer_id) == 30
    assert _overage(customer_id) == 20
    assert record(DAY) == 1  # the rise since what was recorded
    assert [value for _, value, _, _ in recorded_events(customer_id)] == [10, 10]
    with session_scope() as session:
        accepted = session.get(InstanceUsage, (customer_id, "i-2"))
        assert accepted is not None and accepted.held_at is None
        assert accepted.accepted_at is not None
        (entry,) = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "usage.instances.accept")
        )
        assert (entry.customer_id, entry.after) == (customer_id, {"counted": ["i-2"]})


def test_the_cap_counts_instances_new_within_the_window(cap_of_two) -> None:
    customer_id = paying_customer("slow@example.com")
    report(customer_id, "old-0", 1, START + timedelta(hours=1))
    report(customer_id, "old-1", 1, START + timedelta(hours=1))
    _process()
    with session_scope() as session:
        # Seen longer ago than the window: they no longer count against the cap.
        for row in session.scalars(select(InstanceUsage)):
            row.first_seen_at = utcnow() - timedelta(
                seconds=get_settings().usage_new_instances_window_seconds + 1
            )
    report(customer_id, "new-0", 1, START + timedelta(hours=2))
    report(customer_id, "new-1", 1, START + timedelta(hours=2))
    report(customer_id, "new-2", 1, START + timedelta(hours=2))
    _process()
    with session_scope() as session:
        assert [row.instance_id for row in held_instances(session)] == ["new-2"]


def test_accepting_an_instance_the_customer_never_reported_names_it(cap_of_two) -> None:
    customer_id = paying_customer("none@example.com")
    with pytest.raises(NotFoundError) as refused, session_scope() as session:
        accept_instances(session, customer_id, ["ghost"])
    assert refused.value.field == "instanceId" and "ghost" in refused.value.message


def test_billing_usage_lists_and_accepts_held_instances(cap_of_two) -> None:
    customer_id = paying_customer("cli-held@example.com")
    for n in range(3):
        report(customer_id, f"i-{n}", 4, START + timedelta(hours=1))
    _process()
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    listed = runner.invoke(app, ["usage", "--held"], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"{customer_id} i-2: 4/4 devices" in listed.output
    refused = runner.invoke(app, ["usage", "--accept", "i-2"], env=env)
    assert refused.exit_code != 0 and "--customer" in refused.output
    accepted = runner.invoke(
        app, ["usage", "--customer", customer_id, "--accept", "i-2", "--held"], env=env
    )
    assert accepted.exit_code == 0, accepted.output
    assert "Counted from now on: i-2" in accepted.output
    assert "No held instances." in accepted.output
    with session_scope() as session:
        actors = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "usage.instances.accept")
        ).all()
    assert [actor.startswith("cli:") for actor in actors] == [True]
    assert _current_active(customer_id) == 12


def test_an_instance_claiming_far_beyond_its_plan_is_held_until_accepted() -> None:
    customer_id = paying_customer("inflated@example.com")  # starter: 10 devices
    report(customer_id, "honest", 8, START + timedelta(hours=1))
    report(customer_id, "leaked", 5, START + timedelta(hours=2))
    _process()
    assert _current_active(customer_id) == 13
    # A known instance (a leaked license naming it) claims 10x the plan's limit and more.
    report(customer_id, "leaked", 101, START + timedelta(hours=3))
    _process()
    with session_scope() as session:
        assert [row.instance_id for row in held_instances(session, customer_id)] == ["leaked"]
    assert _current_active(customer_id) == 8
    with session_scope() as session:
        accept_instances(session, customer_id, ["leaked"])
    assert _current_active(customer_id) == 109
    # Accepted: the operator's word stands for its next reports too.
    report(customer_id, "leaked", 120, START + timedelta(hours=4))
    _process()
    assert _current_active(customer_id) == 128
