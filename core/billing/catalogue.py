"""What we sell through Stripe: the plans' prices, and `billing stripe setup` that creates them.

A plan's price is its STRIPE_PRICE_* setting, else the active price with the plan's lookup key
(what `setup_catalogue` creates), so a deployment works with either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.billing.gateway import StripeGateway, StripeNotConfiguredError
from core.billing.trials import parse_plan
from core.errors import InvalidInputError
from core.plans import PAID_PLANS, PLANS, Plan, PlanSpec
from core.settings import Settings, get_settings

Obj = dict[str, Any]

_SETTING_FOR = {plan: f"STRIPE_PRICE_{plan.value.upper()}" for plan in PAID_PLANS}


def configured_price_ids(settings: Settings | None = None) -> dict[Plan, str]:
    settings = settings or get_settings()
    configured = {
        Plan.STARTER: settings.stripe_price_starter,
        Plan.PROFESSIONAL: settings.stripe_price_professional,
        Plan.ENTERPRISE: settings.stripe_price_enterprise,
    }
    return {plan: price for plan, price in configured.items() if price}


def plan_for_price(price: Obj | None, settings: Settings | None = None) -> Plan | None:
    """The plan a Stripe price sells: by the STRIPE_PRICE_* settings, else by its lookup key."""
    if not price:
        return None
    price_id = price.get("id")
    for plan, configured in configured_price_ids(settings).items():
        if configured == price_id:
            return plan
    lookup_key = price.get("lookup_key")
    for plan, spec in PLANS.items():
        if lookup_key and spec.stripe_lookup_key == lookup_key:
            return plan
    tagged = (price.get("metadata") or {}).get("zemfyre_plan")
    if tagged in {plan.value for plan in PLANS} and PLANS[Plan(tagged)].paid:
        return Plan(tagged)
    return None


def sellable_plan(name: object, *, field: str = "plan") -> PlanSpec:
    spec = parse_plan(name, field=field)
    if not spec.paid:
        paid = ", ".join(plan.value for plan in PAID_PLANS)
        raise InvalidInputError(
            f"plan {spec.plan.value!r} is not sold through Stripe; paid plans are: {paid}",
            field=field,
        )
    return spec


def find_promotion(gateway: StripeGateway, promo_code: str | None) -> Obj | None:
    """The active promotion code a customer typed, or a 422 naming `promoCode`."""
    if promo_code is None:
        return None
    code = promo_code.strip()
    promotion = gateway.find_promotion_code(code) if code else None
    if promotion is None:
        raise InvalidInputError(
            f"promotion code {promo_code!r} is unknown or not active", field="promoCode"
        )
    return promotion


def price_for_plan(gateway: StripeGateway, spec: PlanSpec) -> str:
    """The Stripe price of a plan: its STRIPE_PRICE_* setting, else the one with its lookup key."""
    configured = configured_price_ids().get(spec.plan)
    if configured:
        return configured
    if spec.stripe_lookup_key:
        price = gateway.find_price_by_lookup_key(spec.stripe_lookup_key)
        if price is not None:
            return str(price["id"])
    setting = _SETTING_FOR[spec.plan]
    raise StripeNotConfiguredError(
        f"no Stripe price for plan {spec.plan.value}: set {setting} or run `billing stripe setup`",
        field=setting,
    )


# -- `billing stripe setup` ---------------------------------------------------------------------

# What `billing stripe setup` creates: the paid plans' Stripe products and monthly USD prices.
SETUP_PLANS: tuple[Plan, ...] = (Plan.STARTER, Plan.PROFESSIONAL)


@dataclass(frozen=True)
class SetupLine:
    plan: str
    product_id: str
    price_id: str
    unit_amount: int
    created: bool

    @property
    def setting(self) -> str:
        return f"STRIPE_PRICE_{self.plan.upper()}={self.price_id}"


def _ref(value: Any) -> str:
    return str(value["id"] if isinstance(value, dict) else value)


def setup_catalogue(gateway: StripeGateway) -> list[SetupLine]:
    """Create the Zemfyre products and monthly prices unless their lookup keys exist already."""
    lines = []
    for plan in SETUP_PLANS:
        spec = PLANS[plan]
        assert spec.stripe_lookup_key and spec.monthly_price_cents is not None
        price = gateway.find_price_by_lookup_key(spec.stripe_lookup_key)
        created = False
        if price is None:
            product = gateway.find_product(plan.value) or gateway.create_product(
                name=f"Zemfyre {spec.display_name}",
                description=f"Up to {spec.features.max_devices} devices",
                zemfyre_plan=plan.value,
            )
            price = gateway.create_monthly_price(
                product_id=str(product["id"]),
                unit_amount=spec.monthly_price_cents,
                lookup_key=spec.stripe_lookup_key,
                zemfyre_plan=plan.value,
            )
            created = True
        lines.append(
            SetupLine(
                plan=plan.value,
                product_id=_ref(price["product"]),
                price_id=str(price["id"]),
                unit_amount=int(price.get("unit_amount") or 0),
                created=created,
            )
        )
    return lines
