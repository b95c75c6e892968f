"""Domain errors. The API turns each into its HTTP status and the JSON error format."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(DomainError):
    status_code = 422
    code = "validation_error"


class NotFoundError(DomainError):
    status_code = 404
    code = "not_found"


class ConflictError(DomainError):
    status_code = 409
    code = "conflict"


class AuthenticationError(DomainError):
    status_code = 401
    code = "unauthorized"


class RevokedLicenseError(AuthenticationError):
    """A revoked license presented at check-in. The answer carries the customer's current license,
    which says revoked: instances believe a signature, never the words of a 401."""

    def __init__(self, message: str, *, license: str) -> None:
        super().__init__(message)
        self.answer_fields = {"license": license}


class PermissionDeniedError(DomainError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailableError(DomainError):
    status_code = 503
    code = "unavailable"


class ConfigurationError(DomainError):
    """A setting the operation needs is missing (for example STRIPE_SECRET_KEY)."""

    status_code = 503
    code = "not_configured"


class RateLimitedError(DomainError):
    """Over a rate limit: the client may come back after `retry_after` seconds."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; retry in {retry_after}s")
        self.headers = {"Retry-After": str(retry_after)}
