"""Stripe's error shape: `{"error": {"type", "message", "param", "code", "doc_url"}}`."""

from __future__ import annotations

from typing import Any

DOCS = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An API error answered with Stripe's JSON error body and an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.should_retry = should_retry

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = DOCS + self.code.replace("_", "-")
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def no_such(kind: str, object_id: str, *, param: str = "id", status: int = 404) -> StripeError:
    """Unknown id: 404 in the URL path, 400 when named by a body parameter."""
    return StripeError(
        status, f"No such {kind}: '{object_id}'", param=param, code="resource_missing"
    )


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def missing_param(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def only_one_of(*params: str) -> StripeError:
    names = ", ".join(params)
    return StripeError(
        400, f"You may only specify one of these parameters: {names}.", param=params[0]
    )


def unknown_param(param: str) -> StripeError:
    return StripeError(
        400, f"Received unknown parameter: {param}", param=param, code="parameter_unknown"
    )


def unauthorized(api_key: str | None) -> StripeError:
    if not api_key:
        message = (
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
            "or we can help at https://support.stripe.com/."
        )
    else:
        message = f"Invalid API Key provided: {_redact(api_key)}"
    return StripeError(401, message, code=None if not api_key else "api_key_invalid")


def injected(status: int) -> StripeError:
    """The error a failing Stripe answers with for `status` (used by the fault switches)."""
    if status == 429:
        return StripeError(
            429,
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    if status == 409:
        return StripeError(
            409,
            "This object cannot be accessed right now because another API request or Stripe "
            "process is currently accessing it.",
            code="lock_timeout",
        )
    if status == 402:
        return StripeError(402, "Your card was declined.", type="card_error", code="card_declined")
    if status >= 500:
        return StripeError(
            status,
            "An unknown error occurred while processing your request.",
            type="api_error",
        )
    return StripeError(status, "The stand-in was told to fail this request.")


def _redact(api_key: str) -> str:
    if len(api_key) <= 12:
        return api_key[:3] + "*" * max(len(api_key) - 3, 0)
    return api_key[:8] + "*" * (len(api_key) - 12) + api_key[-4:]
