"""Signing in and out of the console, and what every page and every change requires.

A page needs a live session (else it redirects to the sign-in form). A change (any POST) also
needs the session's CSRF token (hidden field `csrf_token`, or htmx's X-CSRF-Token header), an
Origin header naming this site, and an operator's key: otherwise 403 and nothing changes.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.console.rendering import PAGE_HEADERS, render
from api.deps import DbSession
from core import audit
from core.console import sessions
from core.console.sessions import ConsoleUser
from core.errors import AuthenticationError
from core.settings import get_settings

COOKIE = "console_session"
SIGN_IN_PATH = "/console/login"
# Where a sign-in without a page to go back to lands: the overview, the console's first page.
HOME_PATH = "/console/"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

router = APIRouter(prefix="/console", include_in_schema=False)


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in form, then back to `next_path`."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class ConsoleForbidden(Exception):
    """A POST the console refuses (403): no CSRF token, another origin, or a viewer's key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _safe_next(path: str | None) -> str:
    """Only a console path of this site; anything else goes to the overview."""
    if not path or not path.startswith("/console/") or "//" in path or "\\" in path:
        return HOME_PATH
    return path


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request) -> bool:
    """The request's Origin is this site: as the browser reached it, or PUBLIC_BASE_URL."""
    origin = (request.headers.get("origin") or "").lower()
    if not origin or origin == "null":
        return False
    here = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    return origin in {here, _origin(get_settings().public_base_url)}


def console_user(request: Request, session: DbSession) -> ConsoleUser:
    """The signed-in operator (the actor of what the request changes)."""
    user = sessions.current_user(session, request.cookies.get(COOKIE))
    if user is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise SignInRequired(request.url.path + query)
    audit.act_as(session, user.name)
    return user


SignedInUser = Annotated[ConsoleUser, Depends(console_user)]


async def console_post(request: Request, user: SignedInUser) -> ConsoleUser:
    """A POST of the console's own pages: same origin and the session's CSRF token."""
    if not same_origin(request):
        raise ConsoleForbidden("This request did not come from the console's own pages.")
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        token = field if isinstance(field, str) else None
    if not sessions.csrf_matches(user, token):
        raise ConsoleForbidden("The form's security token is missing or out of date.")
    return user


PostingUser = Annotated[ConsoleUser, Depends(console_post)]


def console_change(user: PostingUser) -> ConsoleUser:
    """A POST allowed to change something: a checked POST (above) by an operator."""
    if not user.can_change:
        raise ConsoleForbidden(f"{user.name} is a viewer: viewers can read, not change anything.")
    return user


ChangingUser = Annotated[ConsoleUser, Depends(console_change)]


def _sign_in_form(
    request: Request, next_path: str, error: str | None, status_code: int
) -> Response:
    return render(
        request,
        "login.html",
        {"next": next_path, "error": error},
        user=None,
        status_code=status_code,
    )


@router.get("/login")
def sign_in_form(request: Request, next: str | None = None) -> Response:
    return _sign_in_form(request, _safe_next(next), None, 200)


@router.post("/login")
def sign_in(
    request: Request,
    session: DbSession,
    api_key: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    """A good admin key starts a session; a wrong one is a 401 (counted against the client's
    failed-authentication limit by the middleware, like the API's) and sets nothing."""
    if not same_origin(request):
        raise ConsoleForbidden("This sign-in did not come from the console's own page.")
    try:
        signed_in = sessions.sign_in(session, api_key)
    except AuthenticationError:
        return _sign_in_form(request, _safe_next(next), "Invalid API key", 401)
    response = RedirectResponse(_safe_next(next), status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(
        COOKIE,
        signed_in.session_id,
        max_age=get_settings().console_session_max_hours * 3600,
        path="/console",
        httponly=True,
        samesite="strict",
        # https as the browser sees it: uvicorn took the scheme from a trusted proxy's
        # X-Forwarded-Proto (FORWARDED_ALLOW_IPS).
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def sign_out(request: Request, session: DbSession, _: PostingUser) -> Response:
    sessions.sign_out(session, request.cookies.get(COOKIE))
    response = RedirectResponse(SIGN_IN_PATH, status_code=303, headers=PAGE_HEADERS)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


def sign_in_redirect(request: Request, next_path: str) -> Response:
    target = f"{SIGN_IN_PATH}?next={quote(_safe_next(next_path), safe='/')}"
    if request.headers.get("hx-request") == "true":
        # htmx would swap the sign-in page into the part it asked for: send the whole tab.
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303, headers=PAGE_HEADERS)
