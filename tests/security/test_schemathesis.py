"""Schemathesis against the app's own OpenAPI document, in process, past authentication.

Every operation is fuzzed with an admin key (or, for the instance routes, a real license), so
the generated inputs reach the validation and domain code instead of stopping at 401; Stripe
calls go to the Stripe stand-in, so checkout, upgrade and cancel run their real code. Checks:
no 5xx, every status and content type is documented, every body matches its documented schema.
The tally (cases, failures) is printed at the end of the run for docs/reliability.md.
"""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.schemas import ID_PATTERN
from tests.security.conftest import Callers, FuzzTally
from tests.stripe_stand_in import StripeStandIn

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The routes an instance calls with its license rather than an admin key.
INSTANCE_OPERATIONS = {("POST", "/api/usage/report"), ("GET", "/api/licenses/current")}
MAX_EXAMPLES = 100


def _load_schema():  # type: ignore[no-untyped-def]
    """The document the app serves at /openapi.json, bound to the app for in-process calls."""
    from api.app import create_app

    app = create_app()
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.app = app
    return loaded


schema = _load_schema()


def _is_valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(re.fullmatch(ID_PATTERN, value))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_survives_generated_input(
    case, callers: Callers, fuzz_tally: FuzzTally, stand_in: StripeStandIn
) -> None:  # type: ignore[no-untyped-def]
    operation = (case.method.upper(), case.path)
    token = callers.license_a if operation in INSTANCE_OPERATIONS else callers.admin_key
    generated_id = (case.path_parameters or {}).get("customer_id")
    if case.method.upper() == "GET" and _is_valid_id(generated_id):
        # Reads of a real customer reach the serialisers, not just the 404 branch; invalid ids
        # (the negative cases) are sent as generated.
        case.path_parameters["customer_id"] = callers.customer_a
    failed = True
    try:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
        failed = False
    finally:
        fuzz_tally.record(case.operation.label, failed)
