"""What can go wrong, each with a short `reason` that is safe to show to an operator."""

from __future__ import annotations


class LicenseError(Exception):
    """A license that must not be trusted, or that does not let the instance run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidLicenseError(LicenseError):
    """Not a genuine license: malformed, forged, another issuer, another algorithm."""


class UnknownKeyError(InvalidLicenseError):
    """Signed with a key (kid) that is not in the key set, even after refreshing it once."""


class ServiceError(Exception):
    """Talking to the billing service did not give the answer asked for."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServiceUnreachableError(ServiceError):
    """No answer (or only 429/5xx answers) after every retry: the service is unreachable."""


class LicenseRevokedError(ServiceError):
    """The service refused the license because it has been revoked."""


class ServiceRefusedError(ServiceError):
    """The service answered with a refusal (4xx) that retrying will not change."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(f"the service answered {status}: {message}")
        self.status = status
        self.message = message
        self.code = code
        self.field = field
