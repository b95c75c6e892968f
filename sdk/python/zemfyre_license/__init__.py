"""Zemfyre license SDK: what a customer instance runs to verify its license and report usage.

Depends on PyJWT and httpx only. Start with `LicenseClient` (or `LicenseClient.from_env()`).
"""

from zemfyre_license.checkin import CheckIn, Outcome
from zemfyre_license.client import LicenseClient, build_keys
from zemfyre_license.errors import (
    InvalidLicenseError,
    LicenseError,
    LicenseRevokedError,
    ServiceError,
    ServiceRefusedError,
    ServiceUnreachableError,
    UnknownKeyError,
)
from zemfyre_license.keys import JwksKeys, KeySetError, PemKey, parse_jwks
from zemfyre_license.license import UNLIMITED, License
from zemfyre_license.retry import RetryPolicy
from zemfyre_license.usage import UsageReceipt
from zemfyre_license.verdict import Verdict
from zemfyre_license.verify import DEFAULT_ISSUER, verify_token

__all__ = [
    "DEFAULT_ISSUER",
    "UNLIMITED",
    "CheckIn",
    "InvalidLicenseError",
    "JwksKeys",
    "KeySetError",
    "License",
    "LicenseClient",
    "LicenseError",
    "LicenseRevokedError",
    "Outcome",
    "PemKey",
    "RetryPolicy",
    "ServiceError",
    "ServiceRefusedError",
    "ServiceUnreachableError",
    "UnknownKeyError",
    "UsageReceipt",
    "Verdict",
    "build_keys",
    "parse_jwks",
    "verify_token",
]
