"""Licenses: admin reads and revocation, the public keys, and the instances' check-in."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import Field

from api.deps import AdminKey, DbSession
from api.ingress_lane import LaneAnswer, LaneRequest, answer_in_framework
from api.schemas import CamelModel, CustomerIdPath, error_responses
from core.errors import ConfigurationError
from core.licensing import keys, reads
from core.licensing.reads import LicenseAnswer
from core.licensing.revocation import reinstate_license, reissue_now, revoke_license
from core.licensing.tokens import ALGORITHM
from core.settings import get_settings

router = APIRouter(tags=["licenses"])


class LicenseOut(CamelModel):
    license: str
    public_key: str
    customer_id: str
    jti: str
    kid: str
    issued_at: datetime
    expires_at: datetime


class CheckInOut(LicenseOut):
    # False when the presented license is the current one, so the instance can skip a rewrite.
    changed: bool


class ReasonIn(CamelModel):
    reason: str | None = Field(default=None, max_length=500)


RevokeIn = ReasonIn


class RevokeOut(CamelModel):
    customer_id: str
    revoked_at: datetime
    reason: str | None
    revoked_licenses: int
    license: str


class PublicKeyOut(CamelModel):
    kid: str
    algorithm: str
    public_key: str


def _rendered(answer: LicenseAnswer, schema: type[LicenseOut], **extra: Any) -> bytes:
    """The answer as FastAPI would serialise `schema` (camelCase), encoded once per cached
    answer and variant rather than on every request."""
    variant = (schema, *extra.items())
    body = answer.rendered.get(variant)
    if body is None:
        body = schema(**_answer_out(answer), **extra).model_dump_json(by_alias=True).encode()
        answer.rendered[variant] = body
    return body


def _answer_out(answer: LicenseAnswer) -> dict[str, Any]:
    stored = answer.license
    return {
        "license": stored.token,
        "public_key": answer.public_key,
        "customer_id": stored.customer_id,
        "jti": stored.jti,
        "kid": stored.kid,
        "issued_at": stored.issued_at,
        "expires_at": stored.expires_at,
    }


def _license_out(row: Any) -> dict[str, Any]:
    return {
        "license": row.token,
        # The key that verifies this very license, even if a rotation happened since.
        "public_key": keys.public_pem_for(row.kid),
        "customer_id": row.customer_id,
        "jti": row.jti,
        "kid": row.kid,
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
    }


@router.get(
    "/.well-known/jwks.json",
    summary="Every published license public key (JWKS)",
    responses=error_responses(429, 503),
)
def jwks_document() -> dict[str, list[dict[str, str]]]:
    try:
        return keys.jwks(get_settings())
    except keys.SigningKeyError as exc:
        raise ConfigurationError(str(exc)) from exc


@router.get(
    "/.well-known/jwks-endorsements.json",
    summary="Each rotation's new key signed by the key it replaced (compact JWS), for pinned keys",
    responses=error_responses(429),
)
def jwks_endorsements() -> dict[str, list[str]]:
    return {"endorsements": keys.endorsements(get_settings())}


@router.get(
    "/api/licenses/public-key",
    summary="The active license public key as PEM (JSON, or raw PEM with ?format=pem)",
    response_model=PublicKeyOut,
    responses={
        200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}},
        **error_responses(422, 429, 503),
    },
)
def public_key(format: str = Query("json", pattern="^(json|pem)$")) -> Any:
    key = keys.signing_key()
    if format == "pem":
        return PlainTextResponse(key.public_pem, media_type="application/x-pem-file")
    return PublicKeyOut(kid=key.kid, algorithm=ALGORITHM, public_key=key.public_pem)


@router.get(
    "/api/licenses/current",
    summary="Instance check-in: present a license (Bearer), get the customer's current one",
    response_model=CheckInOut,
    responses=error_responses(401, 429, 503),
    openapi_extra={"security": [{"HTTPBearer": []}]},
)
async def check_in(request: Request) -> Response:
    # The application answers this route in its ingress lane (api/app.py) without coming here;
    # the declaration documents it.
    return await answer_in_framework(check_in_lane, request)


async def check_in_lane(request: LaneRequest) -> LaneAnswer:
    """An instance's check-in, answered in the lane (api/ingress_lane.py): no routing and no
    request session; the answer is usually cached, and a miss opens its own."""
    result = await reads.check_in(request.bearer_token())
    return 200, _rendered(result.answer, CheckInOut, changed=result.changed)


@router.get(
    "/api/licenses/{customer_id}",
    summary="The customer's current license (admin)",
    response_model=LicenseOut,
    responses=error_responses(401, 404, 422, 429, 503),
    openapi_extra={"security": [{"HTTPBearer": []}]},
)
async def get_license(customer_id: CustomerIdPath, request: Request) -> Response:
    # The application answers well-formed ids in its ingress lane (api/app.py); this route
    # validates the others (422 naming customerId).
    return await answer_in_framework(license_lane, request)


# The admin read's paths the lane answers: a well-formed id, not a sibling route's name.
LICENSE_READ_PATH = re.compile(r"/api/licenses/(?!public-key$|current$)[A-Za-z0-9_-]{1,64}")


async def license_lane(request: LaneRequest) -> LaneAnswer:
    """The admin license read, answered in the lane: both the key and the license are cached."""
    await reads.authenticate_admin(request.bearer_token())
    customer_id = request.scope["path"].rsplit("/", 1)[1]
    return 200, _rendered(await reads.license_of(customer_id), LicenseOut)


@router.post(
    "/api/licenses/{customer_id}/revoke",
    summary="Revoke the customer's licenses; its next license says revoked (admin)",
    responses=error_responses(401, 403, 404, 413, 422, 429, 503),
)
def revoke(
    customer_id: CustomerIdPath, _: AdminKey, session: DbSession, body: RevokeIn | None = None
) -> RevokeOut:
    result = revoke_license(session, customer_id, reason=body.reason if body else None)
    assert result.customer.license_revoked_at is not None
    return RevokeOut(
        customer_id=customer_id,
        revoked_at=result.customer.license_revoked_at,
        reason=result.customer.license_revoked_reason,
        revoked_licenses=result.revoked_licenses,
        license=result.license.token,
    )


@router.post(
    "/api/licenses/{customer_id}/reinstate",
    summary="Lift a revocation; the customer gets a normal license again (admin)",
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503),
)
def reinstate(
    customer_id: CustomerIdPath, _: AdminKey, session: DbSession, body: ReasonIn | None = None
) -> LicenseOut:
    row = reinstate_license(session, customer_id, reason=body.reason if body else None)
    return LicenseOut(**_license_out(row))


@router.post(
    "/api/licenses/{customer_id}/reissue",
    summary="Issue the customer a new current license now, even if nothing changed (admin)",
    responses=error_responses(401, 403, 404, 413, 422, 429, 503),
)
def reissue(
    customer_id: CustomerIdPath, _: AdminKey, session: DbSession, body: ReasonIn | None = None
) -> LicenseOut:
    row = reissue_now(session, customer_id, reason=body.reason if body else None)
    return LicenseOut(**_license_out(row))
