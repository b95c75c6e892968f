"""The billing service's HTTP protocol as an instance sees it: paths, headers, error answers."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

CHECK_IN_PATH = "/api/licenses/current"
USAGE_REPORT_PATH = "/api/usage/report"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """`{"error": {"code": ..., "message": ..., "field": ...}}`, as the service answers 4xx."""

    status: int
    code: str | None
    message: str
    field: str | None

    @property
    def is_revocation(self) -> bool:
        """A 401 for a revoked license, as opposed to a forged, expired or unknown one.

        The service answers "license has been revoked; ..." for a revoked license and
        "invalid license: ..." (or "missing license: ...") for every other refusal.
        """
        message = self.message.lower()
        return (
            self.status == 401
            and "revoked" in message
            and not message.startswith(("invalid license", "missing license"))
        )


def error_answer(response: httpx.Response) -> ErrorAnswer:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return ErrorAnswer(response.status_code, None, response.text[:200] or "no details", None)
    message = error.get("message")
    return ErrorAnswer(
        status=response.status_code,
        code=error.get("code") if isinstance(error.get("code"), str) else None,
        message=message if isinstance(message, str) else "no details",
        field=error.get("field") if isinstance(error.get("field"), str) else None,
    )


def json_object(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
