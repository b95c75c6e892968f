"""`billing usage`: the usage viewer, for one customer or all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from cli.common import console, db_session, fail, field_line

if TYPE_CHECKING:
    from core.usage.held_instances import HeldInstance
    from core.usage.processing import QuarantinedReport
    from core.viewer.overview import CustomerOverview
    from core.viewer.queries import CustomerUsage, UsageSummary

# The same as core.viewer.queries (tests/cli/test_main.py checks it), written here as that
# module pulls in SQLAlchemy and the models, which `billing --help` and other commands never need.
DEFAULT_DAYS = 7
MAX_DAYS = 366

DOUBLE_RULE = "═" * 77
RULE = "─" * 77
BAR_WIDTH = 40
# Eighth blocks make short bars readable: 3.5 cells of 40 is "███▌".
EIGHTHS = " ▏▎▍▌▋▊▉"
SPARKS = "▁▂▃▄▅▆▇█"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else f"{value} devices"


def _percent(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:.1f}%"


def _warning_style(utilization: float | None) -> str:
    return "bold red" if utilization and utilization >= 100 else "bold yellow"


def _warning(summary: UsageSummary, indent: str = "") -> None:
    if summary.warning is None:
        return
    style = _warning_style(summary.utilization)
    console.print(f"{indent}[{style}]⚠️  {summary.warning}[/{style}]")


def _styler() -> Callable[[str, str], str]:
    """Wrap text in a rich style's escape codes exactly when the console would colour it.

    The `--all` overview writes thousands of lines at once instead of one console.print each
    (which measures and wraps every line), so it applies the console's own colour decision.
    """
    system = console.color_system
    if system is None:
        return lambda text, _style: text
    from rich.color import ColorSystem
    from rich.style import Style

    color_system = ColorSystem[system.upper()]
    styles: dict[str, Style] = {}

    def styled(text: str, style: str) -> str:
        parsed = styles.get(style)
        if parsed is None:
            parsed = Style.parse(style)
            parsed = styles[style] = parsed.without_color if console.no_color else parsed
        return parsed.render(text, color_system=color_system)

    return styled


def bar(value: int, scale: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `value` out of `scale` in `width` cells, to an eighth of a cell."""
    if scale <= 0 or value <= 0:
        return ""
    eighths = round(min(value, scale) * width * 8 / scale)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def sparkline(values: Sequence[int]) -> str:
    """One block per day, as high as the day's devices against the busiest day of the series."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    last = len(SPARKS) - 1
    return "".join(SPARKS[round(max(value, 0) * last / top)] for value in values)


def _chart(usage: CustomerUsage) -> None:
    limit = usage.summary.limit
    top = max((point.active_devices for point in usage.daily), default=0)
    # Scale to the limit when there is one, so the bars show how full the plan is.
    scale = max(top, limit or 0) or 1
    console.print(f"Active Devices per Day (scale: {scale} devices):")
    console.print(RULE)
    for point in usage.daily:
        console.print(
            f"{point.day:%Y-%m-%d} │{bar(point.active_devices, scale):<{BAR_WIDTH}}│ "
            f"{point.active_devices}"
        )
    console.print(RULE)


def show_customer(usage: CustomerUsage) -> None:
    info, summary = usage.customer, usage.summary
    console.print("Customer Information:")
    console.print(DOUBLE_RULE)
    for label, value in (
        ("ID", info.customer_id),
        ("Email", info.email),
        ("Name", info.name),
        ("Company", info.company_name),
    ):
        console.print(field_line(label, value), soft_wrap=True)
    console.print(DOUBLE_RULE)
    console.print()
    console.print("Subscription Information:")
    console.print(RULE)
    console.print(field_line("Plan", (info.plan or "none").upper()))
    console.print(field_line("Status", (info.status or "none").upper()))
    console.print(
        field_line("Device Limit", "unlimited" if summary.limit is None else summary.limit)
    )
    console.print(field_line("Renewal Date", _when(info.renewal_date)))
    console.print(RULE)
    console.print()

    console.print(f"Usage Reports (Last {usage.days} Days):")
    if usage.reports:
        from rich.table import Table

        table = Table("Date", "Instance ID", "Active", "Total", "Utilization")
        for column in table.columns[2:]:
            column.justify = "right"
        for row in usage.reports:
            table.add_row(
                _when(row.reported_at),
                row.instance_id,
                str(row.active_devices),
                str(row.total_devices),
                _percent(row.utilization),
            )
        console.print(table)
        if len(usage.reports) < summary.total_reports:
            console.print(f"(newest {len(usage.reports)} of {summary.total_reports} shown)")
    else:
        console.print("No reports in this period.")
    if usage.retention is not None and usage.retention.note:
        console.print(f"Note: {usage.retention.note}.")
    console.print()

    console.print("Summary Statistics:")
    console.print(RULE)
    avg = "-" if summary.avg_active is None else f"{summary.avg_active:.1f} devices"
    peak = "-" if summary.peak_active is None else f"{summary.peak_active} devices"
    for label, value in (
        ("Total Reports", summary.total_reports),
        ("Avg Active", avg),
        ("Peak Active", peak),
        ("Current Active", f"{summary.current_active} devices"),
        ("Current Total", f"{summary.current_total} devices"),
        ("Instances", summary.instances),
        ("Limit", _limit(summary.limit)),
        ("Remaining", _limit(summary.remaining)),
        ("Utilization", _percent(summary.utilization)),
    ):
        console.print(field_line(label, value))
    if summary.warning:
        console.print()
        _warning(summary)
    console.print(RULE)
    console.print()
    _overage(usage)
    _chart(usage)


def _overage(usage: CustomerUsage) -> None:
    """Devices above the limit, billed per device-day (docs/stripe.md, "Usage-based billing")."""
    overage = usage.overage
    if overage is None or not overage.billed or overage.unit_price_cents is None:
        return
    unit = overage.unit_price_cents / 100
    console.print(f"Device Overage (${unit:,.2f} per device-day above {overage.limit} devices):")
    console.print(RULE)
    for day, billable in overage.daily:
        if billable:
            console.print(field_line(f"{day:%Y-%m-%d}", f"{billable} device-day(s)"))
    for day, carried in overage.carried_over:
        console.print(
            field_line(f"{day:%Y-%m-%d}", f"{carried} device-day(s), carried over into this period")
        )
    console.print(field_line("Period Since", f"{overage.period_start:%Y-%m-%d}"))
    console.print(field_line("Device-days", overage.period_device_days))
    charge = overage.estimated_charge_cents / 100
    console.print(field_line("Est. Charge", f"${charge:,.2f} (next invoice, today so far)"))
    console.print(RULE)
    console.print()


def show_all(rows: Sequence[CustomerOverview], days: int) -> None:
    """The overview of every customer, then who is at or above 80%, written in one go.

    Plain fixed-width lines written straight to the output: a rich Table measures every cell of
    every row, and console.print wraps every line, which takes seconds for thousands of customers
    (bench/usage_all.py).
    """
    lines = [f"Found {len(rows)} customer(s)"]
    if rows:
        header = (
            f"{'Customer':<24} {'Customer ID':<22} {'Plan':<12} {'Limit':>9} {'Active':>7} "
            f"{'Total':>7} {'Use':>8} {'Reports':>8} {'Overage':>8}  Last {days} days"
        )
        lines += [f"Usage of all customers (last {days} days)", RULE, header, RULE]
        warned: list[CustomerOverview] = []
        for row in rows:
            name = row.company_name or row.name or row.email
            if len(name) > 24:
                name = name[:23] + "…"
            use = _percent(row.utilization)
            if row.warning:
                use += " ⚠"
                warned.append(row)
            limit = "unlimited" if row.limit is None else row.limit
            lines.append(
                f"{name:<24} {row.customer_id:<22} {(row.plan or 'none').upper():<12} "
                f"{limit:>9} {row.current_active:>7} {row.current_total:>7} {use:>8} "
                f"{row.total_reports:>8} {row.overage:>8}  {sparkline(row.daily)}"
            )
        lines.append(RULE)
        if warned:
            styled = _styler()
            lines += ["", f"{len(warned)} customer(s) at or above 80% of their device limit:"]
            for row in warned:
                lines.append(f"  {row.customer_id} ({row.email})")
                warning = f"⚠️  {row.warning}"
                lines.append("    " + styled(warning, _warning_style(row.utilization)))
    console.file.write("\n".join(lines) + "\n")
    console.file.flush()


def show_quarantined(rows: Sequence[QuarantinedReport], total: int) -> None:
    if not rows:
        console.print("No quarantined usage reports.")
        return
    console.print(f"{total} quarantined usage report(s) (newest {len(rows)} shown):")
    for row in rows:
        console.print(
            f"  #{row.report_id} {row.customer_id} {row.instance_id} "
            f"reported {_when(row.reported_at)}, {row.attempts} attempt(s), "
            f"set aside {_when(row.quarantined_at)}",
            soft_wrap=True,
        )
        console.print(f"    {row.last_error or '-'}", soft_wrap=True, markup=False)


def show_held(rows: Sequence[HeldInstance]) -> None:
    if not rows:
        console.print("No held instances.")
        return
    console.print(f"{len(rows)} instance(s) held beyond the new-instance cap, not counted:")
    for row in rows:
        console.print(
            f"  {row.customer_id} {row.instance_id}: {row.active_devices}/{row.total_devices} "
            f"devices, first seen {_when(row.first_seen_at)}",
            soft_wrap=True,
            markup=False,
        )
    console.print("💡 Count one: billing usage --customer ID --accept INSTANCE_ID")


def usage(
    customer: str = typer.Option(None, "--customer", help="Show one customer (its ID)"),
    all_customers: bool = typer.Option(False, "--all", help="Show every customer"),
    quarantined: bool = typer.Option(
        False, "--quarantined", help="List reports set aside after failing USAGE_MAX_ATTEMPTS"
    ),
    held: bool = typer.Option(
        False,
        "--held",
        help="List instances held beyond USAGE_NEW_INSTANCES_PER_WINDOW (of --customer, or all)",
    ),
    accept: list[str] = typer.Option(
        None,
        "--accept",
        help="Count this held instance of --customer from now on (repeatable)",
    ),
    days: int = typer.Option(DEFAULT_DAYS, "--days", help="The last N UTC days, today included"),
) -> None:
    """Device usage against plan limits, with warnings at 80% and 100%."""
    if held or accept:
        return _held(customer, held, accept or [])
    if [bool(customer), all_customers, quarantined].count(True) != 1:
        raise fail("give either --customer ID, --all or --quarantined")
    if not 1 <= days <= MAX_DAYS:
        raise fail(f"--days must be between 1 and {MAX_DAYS}")
    from core.usage.processing import count_quarantined, quarantined_reports
    from core.viewer.overview import all_customers_usage
    from core.viewer.queries import customer_usage

    with db_session() as session:
        if quarantined:
            show_quarantined(quarantined_reports(session), count_quarantined(session))
        elif all_customers:
            show_all(all_customers_usage(session, days=days), days)
            waiting = count_quarantined(session)
            if waiting:
                console.print(
                    f"{waiting} usage report(s) quarantined: billing usage --quarantined",
                    style="bold red",
                )
        else:
            show_customer(customer_usage(session, customer.strip(), days=days))


def _held(customer: str | None, listing: bool, accept: list[str]) -> None:
    from core.usage.held_instances import accept_instances, held_instances

    if accept and not customer:
        raise fail("--accept needs --customer ID")
    with db_session() as session:
        if accept:
            accepted = accept_instances(session, customer.strip(), accept)  # type: ignore[union-attr]
            named = ", ".join(accepted) if accepted else "none (all were counted already)"
            console.print(f"✅ Counted from now on: {named}", markup=False)
        if listing:
            show_held(held_instances(session, customer.strip() if customer else None))
