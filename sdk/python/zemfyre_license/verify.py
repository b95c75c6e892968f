"""Offline verification of a license JWT: RS256 only, a known key, this service's issuer.

The algorithm in the token's header is never trusted to choose how the signature is checked
(that is what `alg: none` and HS256-with-the-public-key forgeries rely on): it must say RS256,
and the key comes from the instance's own key set by kid, never from the token.
Expiry is not checked here: whether an expired license may still run (grace) is the verdict's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from zemfyre_license.errors import InvalidLicenseError
from zemfyre_license.keys import KeySource
from zemfyre_license.license import License

ALGORITHM = "RS256"
DEFAULT_ISSUER = "zemfyre-billing"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub"]


def read_token(value: str) -> str:
    """A license given as the token itself or as `@path/to/file`."""
    value = value.strip()
    if value.startswith("@"):
        with open(value[1:], encoding="ascii") as fh:
            return fh.read().strip()
    return value


def _key_id(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidLicenseError("license is not a well-formed JWT") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise InvalidLicenseError(f"license algorithm {alg!r} is not allowed (only RS256)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidLicenseError("license has no key id (kid)")
    return kid


def _decode(token: str, key: Any, issuer: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            # Time claims are judged against the instance's (injectable, checked) clock.
            options={
                "require": _REQUIRED_CLAIMS,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise InvalidLicenseError("license signature is invalid") from None
    except jwt.InvalidIssuerError:
        raise InvalidLicenseError(f"license was not issued by {issuer!r}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidLicenseError(f"license lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidLicenseError(f"license is invalid: {exc}") from None


def _check_shape(claims: Mapping[str, Any]) -> None:
    for name in ("iat", "exp"):
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidLicenseError(f"license claim {name!r} is not a number")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise InvalidLicenseError("license claim 'sub' is not a customer id")
    for name in ("features", "limits", "subscription"):
        if name in claims and not isinstance(claims[name], Mapping):
            raise InvalidLicenseError(f"license claim {name!r} is not an object")


def verify_token(token: str, keys: KeySource, *, issuer: str = DEFAULT_ISSUER) -> License:
    """The license if `token` is genuine (signature, algorithm, issuer); InvalidLicenseError
    (UnknownKeyError for a kid the key set lacks, even after one refresh) otherwise."""
    if not isinstance(token, str) or not token.strip():
        raise InvalidLicenseError("license is empty")
    token = token.strip()
    kid = _key_id(token)
    claims = _decode(token, keys.key_for(kid), issuer)
    _check_shape(claims)
    return License(token=token, claims=claims, kid=kid)
