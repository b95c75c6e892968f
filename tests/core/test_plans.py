from __future__ import annotations

import json

import pytest

from core.plans import (
    PAID_PLANS,
    PLANS,
    UNLIMITED,
    Plan,
    UnknownPlanError,
    get_plan,
    plan_for_features,
)

# The plan table of the README, written out independently of core/plans.py.
EXPECTED = {
    "trial": {
        "price": 0,
        "paid": False,
        "lookup": None,
        "features": {
            "maxDevices": 5,
            "dataRetentionDays": 14,
            "canExportData": True,
            "hasAdvancedAlerts": False,
            "hasApiAccess": True,
            "hasMqttAccess": True,
            "hasCustomBranding": False,
        },
        "limits": {"maxUsers": 2, "maxAlertRules": 10, "maxDashboards": 5},
    },
    "starter": {
        "price": 2900,
        "paid": True,
        "lookup": "zemfyre_starter_monthly",
        "features": {
            "maxDevices": 10,
            "dataRetentionDays": 30,
            "canExportData": True,
            "hasAdvancedAlerts": False,
            "hasApiAccess": True,
            "hasMqttAccess": True,
            "hasCustomBranding": False,
        },
        "limits": {"maxUsers": 3, "maxAlertRules": 25, "maxDashboards": 5},
    },
    "professional": {
        "price": 9900,
        "paid": True,
        "lookup": "zemfyre_professional_monthly",
        "features": {
            "maxDevices": 50,
            "dataRetentionDays": 365,
            "canExportData": True,
            "hasAdvancedAlerts": True,
            "hasApiAccess": True,
            "hasMqttAccess": True,
            "hasCustomBranding": False,
        },
        "limits": {"maxUsers": 10, "maxAlertRules": 100, "maxDashboards": 20},
    },
    "enterprise": {
        "price": None,
        "paid": True,
        "lookup": "zemfyre_enterprise_monthly",
        "features": {
            "maxDevices": 2_147_483_647,
            "dataRetentionDays": 3650,
            "canExportData": True,
            "hasAdvancedAlerts": True,
            "hasApiAccess": True,
            "hasMqttAccess": True,
            "hasCustomBranding": True,
        },
        "limits": {
            "maxUsers": 2_147_483_647,
            "maxAlertRules": 2_147_483_647,
            "maxDashboards": 2_147_483_647,
        },
    },
}


def test_catalogue_has_exactly_the_four_plans() -> None:
    assert [p.value for p in Plan] == ["trial", "starter", "professional", "enterprise"]
    assert set(PLANS) == set(Plan)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_plan_values_match_the_table(name: str) -> None:
    spec = get_plan(name)
    expected = EXPECTED[name]
    assert spec.plan == Plan(name)
    assert spec.display_name == name.capitalize()
    assert spec.monthly_price_cents == expected["price"]
    assert spec.paid is expected["paid"]
    assert spec.stripe_lookup_key == expected["lookup"]
    assert spec.features.to_claims() == expected["features"]
    assert spec.limits.to_claims() == expected["limits"]
    assert spec.support


def test_claim_names_are_the_seed_names() -> None:
    spec = get_plan(Plan.STARTER)
    assert tuple(spec.features.to_claims()) == (
        "maxDevices",
        "dataRetentionDays",
        "canExportData",
        "hasAdvancedAlerts",
        "hasApiAccess",
        "hasMqttAccess",
        "hasCustomBranding",
    )
    assert tuple(spec.limits.to_claims()) == ("maxUsers", "maxAlertRules", "maxDashboards")


def test_specs_are_immutable() -> None:
    with pytest.raises(AttributeError):
        get_plan("starter").features.max_devices = 1000  # type: ignore[misc]


def test_unlimited_never_blocks_a_numeric_limit_check() -> None:
    features = get_plan("enterprise").features
    # Instances check `count >= maxDevices`; no realistic fleet reaches it.
    for count in (0, 1, 10**6, 10**9):
        assert not count >= features.max_devices
    assert UNLIMITED == 2**31 - 1
    # A plain JSON integer: not -1, null, a float or Infinity.
    encoded = json.dumps(features.to_claims())
    assert '"maxDevices": 2147483647' in encoded
    assert json.loads(encoded)["maxDevices"] == UNLIMITED
    assert all(v > 10**9 for v in get_plan("enterprise").limits.to_claims().values())


@pytest.mark.parametrize(
    ("name", "plan"),
    [
        ("starter", Plan.STARTER),
        ("Starter", Plan.STARTER),
        ("  PROFESSIONAL ", Plan.PROFESSIONAL),
        ("EnTeRpRiSe", Plan.ENTERPRISE),
        (Plan.TRIAL, Plan.TRIAL),
    ],
)
def test_get_plan_ignores_case(name: str, plan: Plan) -> None:
    assert get_plan(name).plan is plan


@pytest.mark.parametrize("name", ["gold", "", "starter_monthly", None, 3])
def test_unknown_plan_lists_the_valid_ones(name: object) -> None:
    with pytest.raises(UnknownPlanError) as excinfo:
        get_plan(name)  # type: ignore[arg-type]
    assert isinstance(excinfo.value, ValueError)
    message = str(excinfo.value)
    assert repr(name) in message
    for plan in ("trial", "starter", "professional", "enterprise"):
        assert plan in message


def test_paid_plans() -> None:
    assert PAID_PLANS == (Plan.STARTER, Plan.PROFESSIONAL, Plan.ENTERPRISE)
    assert "trial" not in PAID_PLANS
    assert "starter" in PAID_PLANS


def test_no_overrides_gives_the_catalogue_values() -> None:
    spec = get_plan("enterprise")
    assert plan_for_features(spec) == (spec.features, spec.limits)
    assert plan_for_features(spec, {}) == (spec.features, spec.limits)


def test_enterprise_overrides_apply() -> None:
    spec = get_plan("enterprise")
    features, limits = plan_for_features(
        spec,
        {
            "features": {"maxDevices": 500, "dataRetentionDays": 730, "hasCustomBranding": False},
            "limits": {"maxUsers": 25},
        },
    )
    assert features.to_claims() == {
        **EXPECTED["enterprise"]["features"],
        "maxDevices": 500,
        "dataRetentionDays": 730,
        "hasCustomBranding": False,
    }
    assert limits.to_claims() == {**EXPECTED["enterprise"]["limits"], "maxUsers": 25}
    # The catalogue itself is untouched.
    assert spec.features.max_devices == UNLIMITED


def test_overrides_do_not_apply_to_catalogue_plans() -> None:
    spec = get_plan("starter")
    assert plan_for_features(spec, {"features": {"maxDevices": 500}}) == (
        spec.features,
        spec.limits,
    )


@pytest.mark.parametrize("plan", ["starter", "enterprise"])
@pytest.mark.parametrize(
    "overrides",
    [
        {"features": {"maxDevice": 500}},  # typo
        {"features": {"max_devices": 500}},  # snake_case is not a claim name
        {"limits": {"maxDevices": 500}},  # wrong section
        {"feature": {"maxDevices": 500}},  # unknown section
        {"features": {"maxDevices": "500"}},
        {"features": {"maxDevices": True}},
        {"features": {"maxDevices": -1}},
        {"features": {"maxDevices": None}},
        {"features": {"maxDevices": 2**31}},
        {"features": {"canExportData": 1}},
        {"features": ["maxDevices"]},
    ],
)
def test_bad_overrides_raise(plan: str, overrides: dict) -> None:
    with pytest.raises(ValueError):
        plan_for_features(get_plan(plan), overrides)


def test_unknown_override_key_message_names_it() -> None:
    with pytest.raises(ValueError, match="maxDevice'.*maxDevices"):
        plan_for_features(get_plan("enterprise"), {"features": {"maxDevice": 1}})
