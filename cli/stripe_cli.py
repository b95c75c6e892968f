"""`billing stripe setup|events|replay|meter-events|meter-retry|meter-settle`: the Stripe
catalogue, the webhook inbox and the overage meter events."""

from __future__ import annotations

import typer

from cli.common import RULE, console, db_session, fail, field_line, print_table, run_task
from core.errors import DomainError
from workers import task_names

app = typer.Typer(help="Stripe: products and prices, received events.", no_args_is_help=True)

EVENTS_RULE = "─" * 110


@app.command()
def setup() -> None:
    """Create the Zemfyre products, monthly USD prices, the device overage meter, the metered
    overage prices and the customer portal configuration in Stripe (safe to run again)."""
    from core.billing.catalogue import setup_catalogue
    from core.billing.gateway import get_gateway
    from core.billing.metering.meters import setup_metering
    from core.billing.portal import setup_portal

    try:
        gateway = get_gateway()
        lines = setup_catalogue(gateway)
        # After the flat prices: the overage prices are made on the plans' products.
        metering = setup_metering(gateway)
        portal = setup_portal(gateway)
    except DomainError as exc:
        raise fail(exc.message) from exc
    console.print("✅ Stripe products and prices are ready:")
    console.print(RULE)
    for line in lines:
        state = "created" if line.created else "already there"
        console.print(
            f"{line.plan:<14}${line.unit_amount / 100:,.2f}/mo  {line.price_id}  ({state})",
            soft_wrap=True,
        )
    meter_state = "created" if metering.meter.created else "already there"
    console.print(
        f"{'overage meter':<14}{metering.meter.event_name}  {metering.meter.meter_id}  "
        f"(sum per Stripe customer, {meter_state})",
        soft_wrap=True,
    )
    for price in metering.prices:
        state = "created" if price.created else "already there"
        console.print(
            f"{price.plan:<14}${price.unit_amount / 100:,.2f} per device-day over the limit  "
            f"{price.price_id}  ({state})",
            soft_wrap=True,
        )
    portal_state = "created" if portal.created else "already there, features set again"
    console.print(
        f"{'portal':<14}cards, invoices, cancel at period end; no plan switching  "
        f"{portal.configuration_id}  ({portal_state})",
        soft_wrap=True,
    )
    console.print(RULE)
    console.print()
    console.print("💡 Add these lines to .env:")
    for line in lines:
        console.print(line.setting, soft_wrap=True)
    for setting in metering.settings_lines:
        console.print(setting, soft_wrap=True)
    console.print(portal.setting, soft_wrap=True)


@app.command("events")
def list_events(
    status: str = typer.Option(
        None, "--status", help="Only events with this status: pending, processed, failed, ignored"
    ),
    limit: int = typer.Option(50, min=1, max=1000, help="How many to show"),
) -> None:
    """List recently received Stripe events with their processing status."""
    from core.billing import inbox

    if status is not None and status not in inbox.STATUSES:
        raise fail(f"unknown status {status!r}; use one of {', '.join(inbox.STATUSES)}")
    with db_session() as session:
        rows = inbox.recent_events(session, status=status, limit=limit)
    columns = [("Event", 30), ("Type", 32), ("Status", 9), ("Attempts", -8), ("Source", 14)]
    print_table(
        f"Found {len(rows)} event(s):",
        [*columns, ("Error", 0)],
        (
            (row.event_id, row.type, row.status, row.attempts, row.source)
            + ((row.last_error or "")[:80],)
            for row in rows
        ),
        EVENTS_RULE,
    )


@app.command()
def replay(event_id: str = typer.Argument(..., help="The Stripe event id (evt_…)")) -> None:
    """Process one Stripe event again now (fetched from Stripe if it was never received)."""
    from core import audit
    from core.billing.event_attempts import CLI
    from core.billing.replay import replay_event

    try:
        done = replay_event(event_id, trigger=CLI, actor=audit.cli_actor())
    except DomainError as exc:
        raise fail(exc.message) from exc
    if done.fetched:
        console.print(f"📥 {event_id} was not received: fetched it from Stripe.")
    if done.outcome is None:
        raise fail(f"{event_id} failed: {done.error}")
    outcome = done.outcome
    console.print(f"✅ Replayed {event_id}")
    console.print(RULE)
    console.print(field_line("Status", outcome.status))
    console.print(field_line("Customer", outcome.customer_id))
    console.print(field_line("License", "reissued" if outcome.license_reissued else "unchanged"))
    console.print(field_line("Note", outcome.note), soft_wrap=True)
    console.print(RULE)


METER_RULE = "─" * 128


@app.command("meter-events")
def meter_events(
    failed: bool = typer.Option(
        False, "--failed", help="Only events Stripe refused for good (no longer sent)"
    ),
    unsent: bool = typer.Option(False, "--unsent", help="Only events still waiting to be sent"),
    unconfirmed: bool = typer.Option(
        False, "--unconfirmed", help="Only events set aside: outcome unknown, not resent"
    ),
    limit: int = typer.Option(50, min=1, max=1000, help="How many to show"),
) -> None:
    """List device overage meter events sent to Stripe, newest day first, with their state."""
    from core.billing.metering import events

    chosen = [(failed, events.FAILED), (unsent, events.UNSENT), (unconfirmed, events.UNCONFIRMED)]
    state = next((name for wanted, name in chosen if wanted), None)
    with db_session() as session:
        rows = events.recent_events(session, state=state, limit=limit)
    columns = [("Id", -6), ("Customer", 22), ("Day", 10), ("Value", -6), ("State", 11)]
    columns += [("Attempts", -8), ("Refused", -7), ("Error", 0)]
    print_table(
        f"Found {len(rows)} meter event(s):",
        columns,
        (
            (row.id, row.customer_id, row.day.isoformat(), row.value, events.state_of(row))
            + (row.attempts, row.refusals, (row.last_error or "")[:50])
            for row in rows
        ),
        METER_RULE,
    )
    if failed and rows:
        console.print("💡 Fix the cause, then `billing stripe meter-retry --all` (or by id).")
    if unconfirmed and rows:
        console.print(
            "💡 Look for each identifier in Stripe's meter, then "
            "`billing stripe meter-settle ID… --in-stripe` (or `--not-in-stripe`)."
        )


@app.command("meter-retry")
def meter_retry(
    event_ids: list[int] = typer.Argument(None, help="Ids of failed meter events"),
    all_failed: bool = typer.Option(False, "--all", help="Every failed meter event"),
) -> None:
    """Send meter events Stripe refused for good again, with a fresh set of attempts."""
    from core.billing.metering import events

    if not event_ids and not all_failed:
        raise fail("name the failed meter events to retry by id, or pass --all")
    with db_session() as session:
        reset = events.retry_failed(session, None if all_failed else event_ids)
    if not reset:
        console.print("Nothing to retry: no failed meter event matched.")
        return
    console.print(f"↻ {len(reset)} meter event(s) will be sent again: {', '.join(map(str, reset))}")
    answer = run_task(task_names.SEND_METER_EVENTS)
    if "skipped" in answer:
        raise fail(f"not sent: {answer['skipped']}")
    console.print(
        f"✅ {answer['sent']} sent to Stripe; {answer['failed']} refused again "
        f"({answer['failedForGood']} given up on), {answer['unsent']} still unsent"
    )


@app.command("meter-settle")
def meter_settle(
    event_ids: list[int] = typer.Argument(..., help="Ids of unconfirmed meter events"),
    in_stripe: bool = typer.Option(
        ...,
        "--in-stripe/--not-in-stripe",
        help="Stripe holds them (recorded as sent), or it does not (sent again now)",
    ),
) -> None:
    """Settle meter events whose outcome was unknown for too long to resend safely, once their
    identifiers were looked up in Stripe: never sent twice, never lost."""
    from core.billing.metering import events

    with db_session() as session:
        settled = events.settle_unconfirmed(session, event_ids, in_stripe=in_stripe)
    if not settled:
        console.print("Nothing to settle: no unconfirmed meter event matched.")
        return
    listed = ", ".join(map(str, settled))
    if in_stripe:
        console.print(f"✅ {len(settled)} meter event(s) recorded as sent: {listed}")
        return
    console.print(f"↻ {len(settled)} meter event(s) will be sent again: {listed}")
    answer = run_task(task_names.SEND_METER_EVENTS)
    if "skipped" in answer:
        raise fail(f"not sent: {answer['skipped']}")
    console.print(f"✅ {answer['sent']} sent to Stripe, {answer['unsent']} still unsent")


@app.command("resolve-issue")
def resolve_issue(
    issue_id: int = typer.Argument(..., help="The billing issue's id"),
    note: str = typer.Option(..., "--note", help="How it was resolved (kept with the issue)"),
) -> None:
    """Close a billing issue (a double subscription, a dispute) with a note saying how."""
    from core.billing import issues

    with db_session() as session:
        issue = issues.resolve_issue(session, issue_id, note)
        console.print(f"✅ {issue.kind} {issue.stripe_object_id} resolved by {issue.resolved_by}")
