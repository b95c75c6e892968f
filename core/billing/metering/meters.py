"""The Stripe side of device overage: the billing meter and the metered overage price per plan.

Devices above a plan's limit are billed per device-day. Stripe sums the meter events we send
(`core.billing.metering.days`) per customer and billing period, and the plan's metered price
turns that sum into money on the period's invoice. `billing stripe setup` creates both here,
idempotently: the meter is found again by its event name, each price by its lookup key.

Only plans with a finite device limit that are sold at a catalogue price are metered (starter,
professional). Enterprise has no limit (and its terms are set per customer) and trials are free:
neither ever gets an overage price or a meter event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.billing import statuses
from core.plans import PLANS, Plan
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    # Only for annotations: license claims read `overage_billed` here without loading Stripe's SDK.
    from core.billing.gateway import StripeGateway

# The payload keys of our meter events (the meter's customer mapping and value settings).
CUSTOMER_KEY = "stripe_customer_id"
VALUE_KEY = "value"

METERED_PLANS: tuple[Plan, ...] = (Plan.STARTER, Plan.PROFESSIONAL)


def overage_is_billed_here(settings: Settings | None = None) -> bool:
    """DEVICE_OVERAGE=billed (the default): overage is sold at all. `hard` turns it off: no
    overage price on any subscription, no meter event, every license's device limit hard."""
    return (settings or get_settings()).device_overage == "billed"


def is_metered(plan: str | Plan) -> bool:
    """Whether subscriptions to `plan` carry the overage price (none when DEVICE_OVERAGE=hard)."""
    return overage_is_billed_here() and plan in {metered.value for metered in METERED_PLANS}


def overage_billed(plan: str | Plan, status: str, *, is_trial: bool) -> bool:
    """Whether devices above the plan's limit are allowed now and billed as overage (a soft
    limit), rather than refused by the instance (a hard limit): paid, metered plans only."""
    return is_metered(plan) and not is_trial and status in statuses.METERED


def overage_lookup_key(plan: Plan) -> str:
    return f"zemfyre_{plan.value}_device_overage"


def overage_setting(plan: Plan) -> str:
    """The .env name holding the plan's overage price id."""
    return f"STRIPE_OVERAGE_PRICE_{plan.value.upper()}"


def overage_unit_cents(plan: Plan, settings: Settings | None = None) -> int:
    """What one device-day above the plan's limit costs, in US cents."""
    settings = settings or get_settings()
    return int(getattr(settings, f"overage_price_{plan.value}_cents"))


def configured_overage_price_ids(settings: Settings | None = None) -> dict[Plan, str]:
    settings = settings or get_settings()
    configured = {
        Plan.STARTER: settings.stripe_overage_price_starter,
        Plan.PROFESSIONAL: settings.stripe_overage_price_professional,
    }
    return {plan: price for plan, price in configured.items() if price}


def overage_price_for_plan(gateway: StripeGateway, plan: Plan) -> str | None:
    """The metered overage price a subscription to `plan` carries besides the flat price.

    None for plans that are never metered (any plan with DEVICE_OVERAGE=hard); a metered plan
    without a price is a set-up mistake (its overage would go unbilled) and raises, naming the
    setting.
    """
    if not is_metered(plan):
        return None
    configured = configured_overage_price_ids().get(plan)
    if configured:
        return configured
    price = gateway.find_price_by_lookup_key(overage_lookup_key(plan))
    if price is not None:
        return str(price["id"])
    from core.billing.gateway import StripeNotConfiguredError

    setting = overage_setting(plan)
    raise StripeNotConfiguredError(
        f"no Stripe overage price for plan {plan.value}: set {setting} or run "
        "`billing stripe setup`",
        field=setting,
    )


def is_overage_price(price: dict[str, Any] | None, settings: Settings | None = None) -> bool:
    """Whether a Stripe price is one of our metered overage prices (not a plan's flat price)."""
    if not price:
        return False
    recurring = price.get("recurring")
    if isinstance(recurring, dict) and recurring.get("usage_type") == "metered":
        return True
    if price.get("id") in configured_overage_price_ids(settings).values():
        return True
    return price.get("lookup_key") in {overage_lookup_key(plan) for plan in METERED_PLANS}


# -- the two items of a metered subscription -----------------------------------------------


def _items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((sub.get("items") or {}).get("data")) or [])


def flat_item(sub: dict[str, Any]) -> dict[str, Any] | None:
    """The item carrying the plan's flat price: what says which plan a subscription sells.
    A metered subscription also has the overage item, in any order."""
    return next((item for item in _items(sub) if not is_overage_price(item.get("price"))), None)


def overage_item(sub: dict[str, Any]) -> dict[str, Any] | None:
    return next((item for item in _items(sub) if is_overage_price(item.get("price"))), None)


def line_items(flat_price_id: str, overage_price_id: str | None) -> list[dict[str, Any]]:
    """Checkout line items: the flat price once, and the overage price without a quantity
    (Stripe refuses one on a metered price: the meter counts)."""
    lines: list[dict[str, Any]] = [{"price": flat_price_id, "quantity": 1}]
    if overage_price_id:
        lines.append({"price": overage_price_id})
    return lines


def overage_item_updates(sub: dict[str, Any], overage_price_id: str | None) -> list[dict[str, Any]]:
    """The subscription `items` entries that make its overage item match the new plan: add it,
    swap its price, or remove it (enterprise is not metered). Empty when it already matches."""
    current = overage_item(sub)
    if current is None:
        return [{"price": overage_price_id}] if overage_price_id else []
    if overage_price_id is None:
        return [{"id": current["id"], "deleted": True}]
    if (current.get("price") or {}).get("id") != overage_price_id:
        return [{"id": current["id"], "price": overage_price_id}]
    return []


def billing_mode(sub: dict[str, Any]) -> str:
    """`flexible` (the default for subscriptions created under our pinned API version) or
    `classic` (older ones)."""
    return str((sub.get("billing_mode") or {}).get("type") or "classic")


def flexible(gateway: StripeGateway, sub: dict[str, Any]) -> dict[str, Any]:
    """`sub` in flexible billing mode, migrated first (one way) when it is classic and carries an
    overage item: only flexible mode bills a swapped or removed metered item's usage so far
    (docs.stripe.com/billing/subscriptions/usage-based/manage-billing-setup, "Update prices
    mid-cycle"); classic drops it. Called before any update that swaps or removes that item
    (`core.billing.metering.moves.prepare_move`)."""
    if overage_item(sub) is None or billing_mode(sub) != "classic":
        return sub
    migrated = gateway.migrate_to_flexible(str(sub["id"]))
    return {**sub, "billing_mode": migrated.get("billing_mode")}


# -- set-up ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterLine:
    meter_id: str
    event_name: str
    created: bool


@dataclass(frozen=True)
class OveragePriceLine:
    plan: str
    price_id: str
    unit_amount: int
    created: bool

    @property
    def setting(self) -> str:
        return f"{overage_setting(Plan(self.plan))}={self.price_id}"


@dataclass(frozen=True)
class MeteringSetup:
    meter: MeterLine
    prices: list[OveragePriceLine]

    @property
    def settings_lines(self) -> list[str]:
        return [f"STRIPE_METER_EVENT_NAME={self.meter.event_name}"] + [
            price.setting for price in self.prices
        ]


def setup_metering(gateway: StripeGateway, settings: Settings | None = None) -> MeteringSetup:
    """Create the overage meter and each metered plan's overage price unless they exist.

    Run after the flat prices exist (`setup_catalogue`): an overage price is made on the product
    of the plan's flat price. Safe to repeat: the meter is found by event name, the prices by
    lookup key.
    """
    settings = settings or get_settings()
    event_name = settings.stripe_meter_event_name
    meter = gateway.find_meter(event_name)
    meter_created = meter is None
    if meter is None:
        meter = gateway.create_sum_meter(
            event_name=event_name,
            display_name="Zemfyre device overage (device-days)",
            customer_key=CUSTOMER_KEY,
            value_key=VALUE_KEY,
        )
    meter_id = str(meter["id"])
    prices = []
    for plan in METERED_PLANS:
        price = gateway.find_price_by_lookup_key(overage_lookup_key(plan))
        created = price is None
        if price is None:
            price = gateway.create_metered_price(
                flat=flat_price(gateway, plan),
                meter_id=meter_id,
                unit_amount=overage_unit_cents(plan, settings),
                lookup_key=overage_lookup_key(plan),
                plan=plan.value,
            )
        prices.append(
            OveragePriceLine(
                plan=plan.value,
                price_id=str(price["id"]),
                unit_amount=int(price.get("unit_amount") or 0),
                created=created,
            )
        )
    return MeteringSetup(MeterLine(meter_id, event_name, meter_created), prices)


def flat_price(gateway: StripeGateway, plan: Plan) -> dict[str, Any]:
    """The plan's flat price (by its lookup key, as `setup_catalogue` finds it, else
    STRIPE_PRICE_*): the overage price goes beside it, on its product, in its currency, whether
    `billing stripe setup` made it or someone did by hand in the Dashboard. Refused unless it is
    monthly: the metered price is monthly, and Stripe bills a subscription's items together."""
    # Here, not at the top: license claims import this module without Stripe's SDK.
    from core.billing.catalogue import price_for_plan
    from core.billing.gateway import StripeNotConfiguredError

    spec = PLANS[plan]
    key = spec.stripe_lookup_key
    flat = gateway.find_price_by_lookup_key(key) if key else None
    if flat is None:
        flat = gateway.retrieve_price(price_for_plan(gateway, spec))
    recurring = flat.get("recurring") or {}
    if recurring.get("interval") != "month" or int(recurring.get("interval_count") or 1) != 1:
        setting = f"STRIPE_PRICE_{plan.value.upper()}"
        raise StripeNotConfiguredError(
            f"the {plan.value} flat price {flat['id']} is not billed monthly: overage is billed "
            f"per month beside it; set {setting} to a monthly price",
            field=setting,
        )
    return flat


def device_limit(plan: Plan) -> int:
    """The device limit above which a metered plan's devices are billed as overage."""
    return PLANS[plan].features.max_devices


def billable_devices(plan: Plan, devices: int) -> int:
    """A day's billable device-days on a metered plan: its devices (each instance's peak of the
    day, summed) above the plan's limit. The meter (`core.billing.metering.days`) and the usage
    viewer's estimate (`core.billing.metering.estimate`) both count with this."""
    return max(0, devices - device_limit(plan))
