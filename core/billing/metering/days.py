"""Device overage of finished UTC days, sent to Stripe's billing meter.

For each customer with a live paid metered subscription (`statuses.METERED`, a plan in
`meters.METERED_PLANS`) when the job runs:

    overage(day) = max(0, Σ over its instances of that instance's peak active devices - maxDevices)

where maxDevices is that of the plan the day was billed at: the plan of the day's first meter
event, or, for a day not billed yet, the current plan if it applied all day (`day_overages`).

The peaks come from the day's rollup (`usage_daily.max_active`): the task rolls the day up again
right before recording it, so reports that arrived late count. Sending happens in two steps so
nothing is sent twice and nothing is lost:

1. `record_day` (one transaction, committed before Stripe is called) writes what the day still
   needs as `OverageMeterEvent` rows: the day's overage when nothing was recorded yet (sequence 0),
   or the rise since what was recorded (the next sequence). A rerun with the same numbers writes
   nothing.
2. `core.billing.metering.sending` sends each unsent row with its fixed identifier and stores
   Stripe's answer, resending (hourly, on beat) only while Stripe would still refuse the
   identifier as a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.billing import statuses
from core.billing.metering.estimate import period_start_at
from core.billing.metering.meters import (
    METERED_PLANS,
    billable_devices,
    device_limit,
    overage_is_billed_here,
)
from core.db import dialect_insert
from core.errors import InvalidInputError
from core.plans import Plan
from core.settings import get_settings
from core.usage.held_instances import held_instance_of
from models import Customer, OverageMeterEvent, Subscription, UsageDaily, utcnow

# Stripe refuses meter events older than 35 days; a day is metered only while it is younger.
STRIPE_MAX_EVENT_AGE_DAYS = 35


# -- which day ----------------------------------------------------------------------------------


def meterable_day(day: date, now: datetime | None = None) -> date:
    """`day` if it can be metered now: finished (UTC) and young enough for Stripe."""
    today = (now or utcnow()).astimezone(UTC).date()
    if day >= today:
        raise InvalidInputError(
            f"day {day.isoformat()} is not finished yet (UTC today is {today.isoformat()}): "
            "a day's peak is only known when it has ended; meter it from tomorrow on",
            field="day",
        )
    if (today - day).days > STRIPE_MAX_EVENT_AGE_DAYS - 1:
        raise InvalidInputError(
            f"day {day.isoformat()} is too old: Stripe accepts meter events of the last "
            f"{STRIPE_MAX_EVENT_AGE_DAYS} days only",
            field="day",
        )
    return day


def days_to_meter(now: datetime | None = None) -> list[date]:
    """The scheduled run's days, oldest first: yesterday and OVERAGE_RECHECK_DAYS before it."""
    yesterday = (now or utcnow()).astimezone(UTC).date() - timedelta(days=1)
    recheck = max(0, min(get_settings().overage_recheck_days, STRIPE_MAX_EVENT_AGE_DAYS - 2))
    return [yesterday - timedelta(days=back) for back in range(recheck, -1, -1)]


def customer_days_to_meter(
    session: Session, stripe_customer_id: str, now: datetime | None = None
) -> tuple[str | None, list[date]]:
    """The customer (ours, of that Stripe customer; None if none) and the finished days metered
    for them alone before their overage item moves or their subscription is cancelled now
    (`core.billing.metering.moves`), oldest first: the nightly run's days (`days_to_meter`) and,
    of the open billing period, every day after their last recorded one (the nightly run late
    or failing) and every earlier day with usage rolled up but nothing recorded (a gap a failed
    run left behind a later recorded day); never a day older than Stripe takes."""
    nightly = days_to_meter(now)
    found = session.execute(
        select(
            Customer.customer_id,
            Subscription.current_period_starts_at,
            Subscription.current_period_ends_at,
        )
        .outerjoin(Subscription, Subscription.customer_id == Customer.customer_id)
        .where(Customer.stripe_customer_id == stripe_customer_id)
    ).first()
    if found is None:
        return None, []
    customer_id, starts, ends = found
    chosen = set(nightly)
    period_start = starts or (period_start_at(ends) if ends is not None else None)
    if period_start is not None:
        oldest = nightly[-1] - timedelta(days=STRIPE_MAX_EVENT_AGE_DAYS - 2)
        first = max(period_start.astimezone(UTC).date(), oldest)
        last = session.scalar(
            select(func.max(OverageMeterEvent.day)).where(
                OverageMeterEvent.customer_id == customer_id
            )
        )
        after = first if last is None else max(first, last + timedelta(days=1))
        chosen.update(after + timedelta(days=n) for n in range((nightly[-1] - after).days + 1))
        recorded = select(OverageMeterEvent.id).where(
            OverageMeterEvent.customer_id == customer_id, OverageMeterEvent.day == UsageDaily.day
        )
        chosen.update(
            session.scalars(
                select(UsageDaily.day)
                .where(
                    UsageDaily.customer_id == customer_id,
                    UsageDaily.day >= first,
                    UsageDaily.day <= nightly[-1],
                    ~recorded.exists(),
                )
                .distinct()
            )
        )
    return customer_id, sorted(chosen)


def event_timestamp(day: date) -> int:
    """The day's last second. Inside the day, and in the newest billing period the day touches,
    which is still open when the job runs shortly after midnight (an event stamped into a period
    whose invoice is already final would never be billed)."""
    next_midnight = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
    return int(next_midnight.timestamp()) - 1


@dataclass(frozen=True, slots=True)
class BillingWindow:
    """What the customer's subscription row says about where a meter event sent now is billed."""

    # The current period as last heard from Stripe (its start None on rows not synced since it
    # was stored: then guessed a month back from the end).
    period_starts_at: datetime | None
    period_ends_at: datetime | None
    # Since when the current overage item (price) bills: Stripe counts an item's usage only
    # from when it was added or its price swapped; what the old one held was billed then.
    metered_since: datetime | None
    # Whether the subscription bills overage now (a live, paid, metered plan with overage sold).
    live: bool
    # When the subscription was cancelled at once: its final invoice took the meter then.
    canceled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Stamp:
    timestamp: int
    # The open period's start the event was carried into; None when stamped on its own day.
    carried_into: datetime | None
    # Not to be sent: no invoice will ever bill it (why, for the operator).
    unbillable: str | None = None


def stamp_for(day: date, billing: BillingWindow, now: datetime) -> Stamp:
    """The timestamp a day's meter event is sent with now: the day's last second, unless that
    lies in a billing period whose invoice is final by now (a recheck, resend or retry days
    later): then the open period's first second, so the device-days are billed on its invoice.
    Never before the current overage item began to bill (a plan change swapped or added it:
    events stamped earlier would count for no item). Unbillable when the subscription no
    longer bills overage and its last invoice is final (or its day lies after the end)."""
    on_day = event_timestamp(day)
    carry = timedelta(minutes=get_settings().overage_carry_over_after_minutes)
    if not billing.live and billing.canceled_at is not None and now >= billing.canceled_at:
        # Cancelled at once: its final invoice read the meter at the cancel (which sends the
        # unsent events first, `moves.meter_first`); Stripe bills nothing sent after it.
        return Stamp(
            on_day,
            None,
            unbillable="canceled at once: its final invoice read the meter at the cancel, "
            "so no invoice would bill an event sent after it",
        )
    if not billing.live:
        ends = [at for at in (billing.period_ends_at, billing.canceled_at) if at is not None]
        end = min(ends) if ends else None
        if end is None or on_day >= end.timestamp() or now >= end + carry:
            return Stamp(
                on_day,
                None,
                unbillable="period closed: the subscription no longer bills overage and its "
                "last invoice is final (or the day lies after it), so no invoice would bill it",
            )
        return Stamp(on_day, None)
    stamp = Stamp(on_day, None)
    if billing.period_ends_at is not None:
        # Renewed in Stripe but not heard of here yet: the open period began at the stored end.
        ends = billing.period_ends_at
        began = ends if ends <= now else billing.period_starts_at or period_start_at(ends)
        if on_day < began.timestamp() and now >= began + carry:
            stamp = Stamp(int(began.timestamp()), began)
    since = billing.metered_since
    if since is not None and stamp.timestamp < since.timestamp():
        return Stamp(int(since.timestamp()), since)
    return stamp


def identifier_for(customer_id: str, day: date, sequence: int) -> str:
    """Stable per customer and day (and rise): at most 93 characters, Stripe allows 100."""
    base = f"zemfyre-overage-{customer_id}-{day:%Y%m%d}"
    return base if sequence == 0 else f"{base}-{sequence}"


# -- what a day owes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayOverage:
    customer_id: str
    stripe_customer_id: str
    plan: str
    peak_devices: int
    max_devices: int

    @property
    def overage(self) -> int:
        return billable_devices(Plan(self.plan), self.peak_devices)


def day_overages(
    session: Session, day: date, *, customer_id: str | None = None
) -> list[DayOverage]:
    """Every metered customer's (or only `customer_id`'s) sum of instance peaks on `day` (from
    usage_daily), at the plan that applied that day, never at today's.

    A day that has meter events keeps the plan its first one recorded: a re-check after a plan
    change bills a late rise against that plan's limit. A day without one is billed at the
    current plan only if that plan was billed all day (`Subscription.metered_since`): before it
    the customer was on another plan, in a trial or on the free tier, which today's plan does not
    say; such a day, or the one the change fell in, is left unbilled rather than billed wrongly.
    """
    if not overage_is_billed_here():
        # DEVICE_OVERAGE=hard: overage is sold to no one, whatever the plan.
        return []
    day_start = datetime.combine(day, time.min, tzinfo=UTC)
    recorded_plan = (
        select(OverageMeterEvent.plan)
        .where(
            OverageMeterEvent.customer_id == Customer.customer_id,
            OverageMeterEvent.day == day,
        )
        .order_by(OverageMeterEvent.sequence)
        .limit(1)
        .scalar_subquery()
    )
    peaks = func.coalesce(func.sum(UsageDaily.max_active), 0)
    query = (
        select(
            Customer.customer_id,
            Customer.stripe_customer_id,
            Subscription.plan,
            Subscription.metered_since,
            recorded_plan,
            peaks,
        )
        .join(Subscription, Subscription.customer_id == Customer.customer_id)
        .join(
            UsageDaily,
            (UsageDaily.customer_id == Customer.customer_id)
            & (UsageDaily.day == day)
            # Instances beyond the new-instance cap bill nothing until an operator accepts them.
            & ~held_instance_of(UsageDaily.customer_id, UsageDaily.instance_id),
        )
        .where(
            # Sending at all needs a live paid subscription that bills overage now.
            Subscription.plan.in_([plan.value for plan in METERED_PLANS]),
            Subscription.status.in_([str(status) for status in statuses.METERED]),
            Subscription.stripe_subscription_id.is_not(None),
            Customer.stripe_customer_id.is_not(None),
        )
        .group_by(
            Customer.customer_id,
            Customer.stripe_customer_id,
            Subscription.plan,
            Subscription.metered_since,
        )
        .order_by(Customer.customer_id)
    )
    if customer_id is not None:
        query = query.where(Customer.customer_id == customer_id)
    rows = session.execute(query).all()
    owed = []
    for owner, stripe_customer_id, plan, since, day_plan, peak in rows:
        if day_plan is None and since is not None and since <= day_start:
            day_plan = plan
        if day_plan is None:
            continue
        owed.append(
            DayOverage(
                customer_id=owner,
                stripe_customer_id=str(stripe_customer_id),
                plan=day_plan,
                peak_devices=int(peak),
                max_devices=device_limit(Plan(day_plan)),
            )
        )
    return owed


@dataclass(frozen=True, slots=True)
class DayRecord:
    day: date
    # Meter event rows this run wrote (a day's first event or a rise).
    recorded: int
    # The day's billable device-days over every customer, as recorded after this run.
    device_days: int


def record_day(session: Session, day: date, *, customer_id: str | None = None) -> DayRecord:
    """Record the meter events `day` still needs (every customer's, or only `customer_id`'s),
    unsent (from its rollup, which the caller has brought up to date); the caller commits before
    anything is sent, so a sent event always has its row. Idempotent whoever runs it: what is
    recorded already is subtracted, and rows are unique per (customer, day, sequence)."""
    event_name = get_settings().stripe_meter_event_name
    recorded_query = (
        select(
            OverageMeterEvent.customer_id,
            func.sum(OverageMeterEvent.value),
            func.max(OverageMeterEvent.sequence),
        )
        .where(OverageMeterEvent.day == day)
        .group_by(OverageMeterEvent.customer_id)
    )
    if customer_id is not None:
        recorded_query = recorded_query.where(OverageMeterEvent.customer_id == customer_id)
    recorded_rows = session.execute(recorded_query).all()
    recorded = {customer_id: (int(total), int(last)) for customer_id, total, last in recorded_rows}
    new_rows: list[dict[str, Any]] = []
    device_days = sum(total for total, _ in recorded.values())
    for owed in day_overages(session, day, customer_id=customer_id):
        total, last = recorded.get(owed.customer_id, (0, -1))
        if owed.overage <= total:
            # Peaks never fall once reported, so nothing to take back.
            continue
        sequence = last + 1
        device_days += owed.overage - total
        new_rows.append(
            {
                "customer_id": owed.customer_id,
                "day": day,
                "sequence": sequence,
                "value": owed.overage - total,
                "plan": owed.plan,
                "stripe_customer_id": owed.stripe_customer_id,
                "event_name": event_name,
                "identifier": identifier_for(owed.customer_id, day, sequence),
                "created_at": utcnow(),
                "attempts": 0,
                "refusals": 0,
            }
        )
    written = 0
    if new_rows:
        # A concurrent run that recorded the same sequence first wins; this one writes nothing.
        insert = dialect_insert(session)
        stmt = (
            insert(OverageMeterEvent)
            .on_conflict_do_nothing(index_elements=["customer_id", "day", "sequence"])
            .returning(OverageMeterEvent.id)
        )
        written = len(session.execute(stmt, new_rows).all())
    return DayRecord(day=day, recorded=max(0, written), device_days=device_days)
