"""Pydantic base for API schemas: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Generic, Literal, TypeVar, get_type_hints

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, create_model
from pydantic.alias_generators import to_camel

# Ids this service and Stripe hand out are letters, digits, "_" and "-". Checking the shape at the
# door turns a NUL byte (which PostgreSQL refuses with an error) or a 10 kB "id" into a 422.
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
CustomerIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="cust_… id")
]
SubscriptionIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=ID_PATTERN,
        description="Stripe subscription id (sub_…) or customer id (cust_…)",
    ),
]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


def _none_is_unlimited(value: Any) -> Any:
    return "unlimited" if value is None else value


# A limit the service gives as None (no limit) reads "unlimited" on the wire.
OrUnlimited = Annotated[int | Literal["unlimited"], BeforeValidator(_none_is_unlimited)]


def wire_model(
    result: type[Any],
    name: str,
    *,
    exclude: frozenset[str] = frozenset(),
    only: tuple[str, ...] | None = None,
    **types: Any,
) -> type[CamelModel]:
    """The camelCase response model of a service's result dataclass, so its fields are written
    once, in the service: every field (or `only` these) less `exclude`, with `types` replacing
    a field's type where the wire says it differently. Built with `model_validate(result)`."""
    hints = get_type_hints(result)
    names = only or tuple(f.name for f in dataclasses.fields(result) if f.name not in exclude)
    fields: dict[str, Any] = {field: (types.get(field, hints[field]), ...) for field in names}
    return create_model(name, __base__=CamelModel, __module__=__name__, **fields)


T = TypeVar("T")


class Page(CamelModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# -- The JSON error format, for the OpenAPI document ---------------------------------------------
# api/errors.py writes these bodies; the models exist so every documented error status says so,
# which lets schemathesis (tests/security) check that each answer matches its documentation.


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    # Validation errors list every problem, `message` and `field` name the first.
    details: list[ErrorDetail] | None = None


class ErrorOut(BaseModel):
    error: ErrorBody
    # A revoked license's check-in: the customer's current license, signed, saying revoked.
    license: str | None = None


ERROR_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or revoked credentials",
    403: "The credentials may not act on this customer",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "Invalid input; `error.field` names the field",
    429: "Rate limited; see Retry-After",
    503: "A dependency (database, broker, signing keys, Stripe) is unavailable or not configured",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting error statuses with the JSON error body."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in codes}
