"""What a failed Stripe call becomes: domain errors the API and the tasks understand.

- `StripeNotConfiguredError` (503): STRIPE_SECRET_KEY is missing or rejected; names the setting.
- `StripeUnavailableError` (503 with Retry-After): Stripe could not be reached or answered
  409/429/5xx — worth retrying later (event tasks do, with backoff).
- `StripeRequestError` (502): Stripe refused the request itself; retrying the same call will not
  help, the message is Stripe's. It keeps Stripe's `param`, so a service answers a 422 naming its
  own field instead (`refused_as`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import stripe

from core.errors import ConfigurationError, DomainError, InvalidInputError, ServiceUnavailableError

_REFUSED = "Stripe refused the request: "


class StripeNotConfiguredError(ConfigurationError):
    """A Stripe operation was asked for but a Stripe setting is missing or wrong."""


class StripeUnavailableError(ServiceUnavailableError):
    """Stripe was unreachable or asked us to come back later: retry."""

    # Stripe's rate limits and outages pass within seconds; the caller is told when to retry.
    retry_after_seconds = 5

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class StripeRequestError(DomainError):
    """Stripe refused the request (a 4xx other than 409/429): retrying will not help."""

    status_code = 502
    code = "stripe_error"

    def __init__(self, message: str, *, field: str | None = None, stripe_code: str | None = None):
        super().__init__(message, field=field)
        self.stripe_code = stripe_code
        # Stripe's name of the parameter it refused (`discounts[0][promotion_code]`), if any.
        self.param = field


@contextmanager
def refused_as(**fields: str) -> Iterator[None]:
    """Stripe refusing one of our parameters is the caller's 422 naming the caller's field.

    `fields` maps Stripe parameter names (the part before any `[`) to ours:
    `with refused_as(discounts="promoCode", items="plan"): ...`. A refusal of a parameter not
    listed stays a StripeRequestError (502): the request we built was wrong, not the input.
    """
    try:
        yield
    except StripeRequestError as exc:
        ours = fields.get((exc.param or "").split("[", 1)[0])
        if ours is None:
            raise
        reason = exc.message.removeprefix(_REFUSED)
        raise InvalidInputError(f"{ours}: Stripe refused it: {reason}", field=ours) from exc


def translate(exc: stripe.StripeError) -> DomainError:
    status = exc.http_status
    message = exc.user_message or str(exc) or exc.__class__.__name__
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return StripeNotConfiguredError(
            f"Stripe rejected STRIPE_SECRET_KEY: {message}", field="STRIPE_SECRET_KEY"
        )
    if isinstance(exc, stripe.APIConnectionError):
        return StripeUnavailableError(f"Stripe is unreachable: {message}")
    if status is None or status in (409, 429) or status >= 500:
        return StripeUnavailableError(f"Stripe is unavailable ({status}): {message}")
    error = getattr(exc, "error", None)
    param = getattr(error, "param", None) if error is not None else None
    return StripeRequestError(f"{_REFUSED}{message}", field=param, stripe_code=exc.code)
