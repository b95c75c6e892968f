"""`billing usage`: SEED's usage viewer, for one customer or all of them."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table

from cli.common import console, db_session, fail, field_line
from core.usage_views import (
    DEFAULT_DAYS,
    MAX_DAYS,
    CustomerUsage,
    DayPoint,
    UsageSummary,
    all_customers_usage,
    customer_usage,
)

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


def _warning(summary: UsageSummary, indent: str = "") -> None:
    if summary.warning is None:
        return
    style = "bold red" if summary.utilization and summary.utilization >= 100 else "bold yellow"
    console.print(f"{indent}[{style}]⚠️  {summary.warning}[/{style}]")


def bar(value: int, scale: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `value` out of `scale` in `width` cells, to an eighth of a cell."""
    if scale <= 0 or value <= 0:
        return ""
    eighths = round(min(value, scale) * width * 8 / scale)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def sparkline(points: list[DayPoint]) -> str:
    top = max((point.active_devices for point in points), default=0)
    if top == 0:
        return SPARKS[0] * len(points)
    last = len(SPARKS) - 1
    return "".join(SPARKS[round(point.active_devices * last / top)] for point in points)


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
    _chart(usage)


def show_all(usages: list[CustomerUsage], days: int) -> None:
    console.print(f"Found {len(usages)} customer(s)")
    if not usages:
        return
    # Plain fixed-width lines written straight to the output: a rich Table measures every cell
    # of every row first, which takes seconds for thousands of customers (bench/usage_all.py).
    header = (
        f"{'Customer':<24} {'Customer ID':<22} {'Plan':<12} {'Limit':>9} {'Active':>7} "
        f"{'Total':>7} {'Use':>8} {'Reports':>8}  Last {days} days"
    )
    lines = [f"Usage of all customers (last {days} days)", RULE, header, RULE]
    for usage in usages:
        info, summary = usage.customer, usage.summary
        name = info.company_name or info.name or info.email
        name = name if len(name) <= 24 else name[:23] + "…"
        use = _percent(summary.utilization) + (" ⚠" if summary.warning else "")
        lines.append(
            f"{name:<24} {info.customer_id:<22} {(info.plan or 'none').upper():<12} "
            f"{'unlimited' if summary.limit is None else summary.limit:>9} "
            f"{summary.current_active:>7} {summary.current_total:>7} {use:>8} "
            f"{summary.total_reports:>8}  {sparkline(usage.daily)}"
        )
    lines.append(RULE)
    console.file.write("\n".join(lines) + "\n")
    warned = [usage for usage in usages if usage.summary.warning]
    if warned:
        console.print()
        console.print(f"{len(warned)} customer(s) at or above 80% of their device limit:")
        for usage in warned:
            console.print(
                f"  {usage.customer.customer_id} ({usage.customer.email})", soft_wrap=True
            )
            _warning(usage.summary, indent="    ")


def usage(
    customer: str = typer.Option(None, "--customer", help="Show one customer (its ID)"),
    all_customers: bool = typer.Option(False, "--all", help="Show every customer"),
    days: int = typer.Option(DEFAULT_DAYS, "--days", help="The last N UTC days, today included"),
) -> None:
    """Device usage against plan limits, with warnings at 80% (SEED's usage viewer)."""
    if bool(customer) == all_customers:
        raise fail("give either --customer ID or --all")
    if not 1 <= days <= MAX_DAYS:
        raise fail(f"--days must be between 1 and {MAX_DAYS}")
    with db_session() as session:
        if all_customers:
            show_all(all_customers_usage(session, days=days), days)
        else:
            show_customer(customer_usage(session, customer.strip(), days=days))
