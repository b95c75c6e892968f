"""The operator console: server-rendered pages under /console in the API's own app.

One module per page group (customers, actions, audit), the templates and the static files (one
stylesheet, vendored htmx) beside them. Pages read through the same services as the API and the
CLI, and each action calls the same service function they do."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.console import (
    at_risk,
    audit,
    auth,
    billing_issues,
    customer,
    customers,
    invoice_preview,
    licenses,
    meter_events,
    overview,
    stripe_events,
)
from api.console.auth import COOKIE, ConsoleForbidden, SignInRequired, sign_in_redirect
from api.console.rendering import STATIC_DIR, render
from core.console import sessions
from core.console.sessions import ConsoleUser
from core.db import session_scope


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return sign_in_redirect(request, exc.next_path)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "error.html",
        {"title": "Not allowed", "message": str(exc), "back": request.headers.get("referer")},
        user=_signed_in(request),
        status_code=403,
    )


Handler = Callable[[Request, Any], Awaitable[Response]]


def _signed_in(request: Request) -> ConsoleUser | None:
    """Who is signed in, so an error page keeps the navigation and the signed-in header; None
    when that cannot be read (the error may be the database's own)."""
    try:
        with session_scope() as session:
            return sessions.current_user(session, request.cookies.get(COOKIE))
    except Exception:  # noqa: BLE001 - an error page must render whatever failed
        return None


def _as_page(api_handler: Handler) -> Handler:
    """The API's error answer (status and message decided once, api/errors.py), as a page when
    the request was the console's."""

    async def handle(request: Request, exc: Any) -> Response:
        answer = await api_handler(request, exc)
        if not request.url.path.startswith("/console"):
            return answer
        try:
            message = json.loads(bytes(answer.body))["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = "Something went wrong."
        return render(
            request,
            "error.html",
            {"title": f"Error {answer.status_code}", "message": message},
            user=_signed_in(request),
            status_code=answer.status_code,
        )

    return handle


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.include_router(auth.router)
    app.include_router(overview.router)
    app.include_router(customers.router)
    app.include_router(customer.router)
    app.include_router(invoice_preview.router)
    app.include_router(licenses.router)
    app.include_router(at_risk.router)
    app.include_router(stripe_events.router)
    app.include_router(meter_events.router)
    app.include_router(billing_issues.router)
    app.include_router(audit.router)
    for error_type, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(error_type, _as_page(handler))
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(ConsoleForbidden, _forbidden)
