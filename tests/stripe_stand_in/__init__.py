"""A local Stripe stand-in for tests: `start_stand_in()` and point the `stripe` SDK at `.url`."""

from .errors import StripeError
from .server import (
    DEFAULT_API_KEY,
    DEFAULT_API_VERSION,
    RecordedRequest,
    StripeStandIn,
    start_stand_in,
)
from .webhooks import signature_header, signed_webhook

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_VERSION",
    "RecordedRequest",
    "StripeError",
    "StripeStandIn",
    "signature_header",
    "signed_webhook",
    "start_stand_in",
]
