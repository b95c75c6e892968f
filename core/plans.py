"""The plan catalogue: the one place plans, their prices, features and limits are defined.

Everything else (Stripe checkout, license claims, usage warnings, the CLI) reads plans from here,
so a price or a limit changes in exactly one spot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Self

# "Unlimited" as a number, never -1, null or Infinity: instances (written in JavaScript) enforce
# limits with `count >= features.maxDevices`. -1 would block everything, null compares as 0 and
# Infinity cannot be written in JSON. 2**31 - 1 survives any JSON parser and any int32 column, and
# no real count ever reaches it, so the comparison simply never blocks.
UNLIMITED = 2_147_483_647


class Plan(StrEnum):
    TRIAL = "trial"
    STARTER = "starter"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"


class UnknownPlanError(ValueError):
    """A plan name that is not in the catalogue."""

    def __init__(self, name: object) -> None:
        valid = ", ".join(plan.value for plan in Plan)
        super().__init__(f"unknown plan {name!r}; valid plans are: {valid}")
        self.name = name


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.capitalize() for word in rest)


class _ClaimsMixin:
    """Maps the snake_case fields of a frozen dataclass to the license's camelCase claim names."""

    __slots__ = ()

    def to_claims(self) -> dict[str, Any]:
        return {_camel(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def with_claims(self, overrides: Mapping[str, Any]) -> Self:
        """A copy with values replaced by claim name; unknown or ill-typed ones raise."""
        by_claim = {_camel(f.name): f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        changes: dict[str, Any] = {}
        for claim, value in overrides.items():
            field = by_claim.get(claim)
            if field is None:
                raise ValueError(
                    f"unknown {type(self).__name__} key {claim!r}; "
                    f"valid keys are: {', '.join(by_claim)}"
                )
            changes[field.name] = _checked_value(claim, field.type, value)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _checked_value(claim: str, type_name: object, value: Any) -> Any:
    # Annotations are strings under `from __future__ import annotations`.
    if type_name in ("bool", bool):
        if not isinstance(value, bool):
            raise ValueError(f"{claim} must be true or false, not {value!r}")
        return value
    # bool is a subclass of int: `True` as a device count is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{claim} must be a whole number, not {value!r}")
    if not 0 <= value <= UNLIMITED:
        raise ValueError(f"{claim} must be between 0 and {UNLIMITED} (unlimited), not {value}")
    return value


@dataclass(frozen=True, slots=True)
class PlanFeatures(_ClaimsMixin):
    max_devices: int
    data_retention_days: int
    can_export_data: bool
    has_advanced_alerts: bool
    has_api_access: bool
    has_mqtt_access: bool
    has_custom_branding: bool


@dataclass(frozen=True, slots=True)
class PlanLimits(_ClaimsMixin):
    max_users: int
    max_alert_rules: int
    max_dashboards: int


@dataclass(frozen=True, slots=True)
class PlanSpec:
    plan: Plan
    display_name: str
    # Integer cents; None when the price is negotiated per customer (enterprise).
    monthly_price_cents: int | None
    features: PlanFeatures
    limits: PlanLimits
    support: str
    # Stripe price lookup key; None for plans that are never sold through Stripe (trial).
    stripe_lookup_key: str | None
    paid: bool
    # Whether per-customer overrides (see `plan_for_features`) apply to this plan.
    customizable: bool = False


PLANS: Mapping[Plan, PlanSpec] = MappingProxyType(
    {
        Plan.TRIAL: PlanSpec(
            plan=Plan.TRIAL,
            display_name="Trial",
            monthly_price_cents=0,
            features=PlanFeatures(
                max_devices=5,
                data_retention_days=14,
                can_export_data=True,
                has_advanced_alerts=False,
                has_api_access=True,
                has_mqtt_access=True,
                has_custom_branding=False,
            ),
            limits=PlanLimits(max_users=2, max_alert_rules=10, max_dashboards=5),
            support="Email",
            stripe_lookup_key=None,
            paid=False,
        ),
        Plan.STARTER: PlanSpec(
            plan=Plan.STARTER,
            display_name="Starter",
            monthly_price_cents=2900,
            features=PlanFeatures(
                max_devices=10,
                data_retention_days=30,
                can_export_data=True,
                has_advanced_alerts=False,
                has_api_access=True,
                has_mqtt_access=True,
                has_custom_branding=False,
            ),
            limits=PlanLimits(max_users=3, max_alert_rules=25, max_dashboards=5),
            support="Email",
            stripe_lookup_key="zemfyre_starter_monthly",
            paid=True,
        ),
        Plan.PROFESSIONAL: PlanSpec(
            plan=Plan.PROFESSIONAL,
            display_name="Professional",
            monthly_price_cents=9900,
            features=PlanFeatures(
                max_devices=50,
                data_retention_days=365,
                can_export_data=True,
                has_advanced_alerts=True,
                has_api_access=True,
                has_mqtt_access=True,
                has_custom_branding=False,
            ),
            limits=PlanLimits(max_users=10, max_alert_rules=100, max_dashboards=20),
            support="Priority",
            stripe_lookup_key="zemfyre_professional_monthly",
            paid=True,
        ),
        Plan.ENTERPRISE: PlanSpec(
            plan=Plan.ENTERPRISE,
            display_name="Enterprise",
            monthly_price_cents=None,
            features=PlanFeatures(
                max_devices=UNLIMITED,
                # "Custom" in the spec: ten years until a customer's contract says otherwise.
                data_retention_days=3650,
                can_export_data=True,
                has_advanced_alerts=True,
                has_api_access=True,
                has_mqtt_access=True,
                has_custom_branding=True,
            ),
            limits=PlanLimits(
                max_users=UNLIMITED, max_alert_rules=UNLIMITED, max_dashboards=UNLIMITED
            ),
            support="24/7 Phone",
            stripe_lookup_key="zemfyre_enterprise_monthly",
            paid=True,
            customizable=True,
        ),
    }
)

# Plans a customer can buy, cheapest first.
PAID_PLANS: tuple[Plan, ...] = tuple(plan for plan, spec in PLANS.items() if spec.paid)


def get_plan(name: str | Plan) -> PlanSpec:
    """The spec of a plan by name, whatever its letter case or surrounding blanks."""
    if not isinstance(name, str):
        raise UnknownPlanError(name)
    try:
        return PLANS[Plan(name.strip().lower())]
    except ValueError:
        raise UnknownPlanError(name) from None


_OVERRIDE_SECTIONS = ("features", "limits")


def plan_for_features(
    spec: PlanSpec, overrides: Mapping[str, Any] | None = None
) -> tuple[PlanFeatures, PlanLimits]:
    """The features and limits a customer on `spec` gets, with its per-customer overrides.

    `overrides` looks like {"features": {"maxDevices": 500}, "limits": {"maxUsers": 25}} and uses
    the license claim names. Unknown keys raise ValueError whatever the plan, so a typo never goes
    unnoticed. Overrides apply only to customizable plans (enterprise): a customer who moves down
    to a catalogue plan gets exactly that plan, even if old enterprise overrides are still stored.
    """
    features, limits = spec.features, spec.limits
    if not overrides:
        return features, limits
    unknown = set(overrides) - set(_OVERRIDE_SECTIONS)
    if unknown:
        raise ValueError(
            f"unknown override section(s) {', '.join(sorted(map(str, unknown)))}; "
            f"valid sections are: {', '.join(_OVERRIDE_SECTIONS)}"
        )
    for section in _OVERRIDE_SECTIONS:
        values = overrides.get(section)
        if values is not None and not isinstance(values, Mapping):
            raise ValueError(f"overrides[{section!r}] must be an object, not {values!r}")
    # Validate first (with_claims raises on bad keys and values), then decide whether to apply.
    new_features = features.with_claims(overrides.get("features") or {})
    new_limits = limits.with_claims(overrides.get("limits") or {})
    if not spec.customizable:
        return features, limits
    return new_features, new_limits
