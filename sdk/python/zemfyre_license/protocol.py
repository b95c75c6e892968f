"""The billing service's HTTP protocol as an instance sees it: paths, headers, error answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

CHECK_IN_PATH = "/api/licenses/current"
USAGE_REPORT_PATH = "/api/usage/report"
# The most an instance reads of one answer: check-in and usage answers hold a license and a few
# fields; anything longer is not the service's, and must not fill the instance's memory.
ANSWER_LIMIT = 256 * 1024
# Hop-by-hop framing of the body as sent; the body kept is already decoded and whole.
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class AnswerTooLargeError(httpx.TransportError):
    """An answer longer than the limit: read no further, as if no answer came."""


def capped_request(
    http: httpx.Client, method: str, url: str, *, limit: int, **kwargs: Any
) -> httpx.Response:
    """`http.request(...)` reading at most `limit` bytes of the (decoded) body, streamed:
    AnswerTooLargeError beyond it, whatever Content-Length says or does not say."""
    request = http.build_request(method, url, **kwargs)
    response = http.send(request, stream=True)
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise AnswerTooLargeError(f"{url} answered {declared} bytes; at most {limit} read")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise AnswerTooLargeError(f"{url} answered over {limit} bytes; not read")
    finally:
        response.close()
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _FRAMING_HEADERS]
    return httpx.Response(
        response.status_code, headers=headers, content=bytes(body), request=request
    )


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
