"""The console's templates, the filters they format numbers and times with, and the navigation.

Pages are Jinja2 templates extending base.html. A page that htmx refreshes in part names the
block to send (`render(..., block="results")`): the same template serves the whole page and the
part, so the page stays readable without JavaScript."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from core.console.sessions import ConsoleUser
from core.settings import get_settings
from models import utcnow

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str


# The navigation bar, in order. A new page group adds its entry here.
NAVIGATION: list[NavItem] = [
    NavItem("Overview", "/console/"),
    NavItem("Customers", "/console/customers"),
    NavItem("At risk", "/console/at-risk"),
    NavItem("Events", "/console/events"),
    NavItem("Meter events", "/console/meter-events"),
    NavItem("Billing issues", "/console/billing-issues"),
    NavItem("Audit", "/console/audit"),
]

# Every console answer: never cached or framed, no scripts but our own file.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def money(cents: int | None) -> str:
    """$1,234.56 from integer cents."""
    if cents is None:
        return "—"
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}${whole:,}.{part:02d}"


# (from, unit size, unit): a span is said in the largest unit it reaches 1.5 of (36 h is
# "2 d", 30 h "30 h"), rounded to the nearest (47 h is "2 d", 4.9 d "5 d", never rounded down).
_UNITS = ((36 * 3600, 86400, "d"), (90 * 60, 3600, "h"), (60, 60, "min"))


def _span(seconds: float) -> str | None:
    for start, size, unit in _UNITS:
        if seconds >= start:
            return f"{round(seconds / size)} {unit}"
    return None


def _ago(seconds: float) -> str:
    if seconds < 0:
        return _ahead(-seconds)
    span = _span(seconds)
    return f"{span} ago" if span else "just now"


def _ahead(seconds: float) -> str:
    span = _span(seconds)
    return f"in {span}" if span else "now"


def absolute(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return f"{value:%Y-%m-%d}"


def when(value: datetime | None) -> Markup:
    """A time relative to now, its UTC date and time in the title (hover) and datetime."""
    if value is None:
        return Markup("—")
    text = _ago((utcnow() - value).total_seconds())
    # Every part is formatted here from a datetime (digits, "-", ":", "+", "UTC", "ago"), so
    # nothing needs escaping; an f-string costs a tenth of Markup.format on a long timeline.
    utc = value.astimezone(UTC)
    return Markup(
        f'<time datetime="{utc.isoformat()}" title="{utc:%Y-%m-%d %H:%M} UTC">{text}</time>'
    )


def day(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    return f"{value.day} {value:%b %Y}"


def short(value: str | None, keep: int = 12) -> Markup:
    """A long id shown cut in a table cell: the stylesheet cuts it (class cut-<keep>), so the
    page holds the whole id, which is what a copy copies; whole in its title too."""
    if not value:
        return Markup("—")
    if len(value) <= keep:
        return escape(value)
    width = min(CUT_WIDTHS, key=lambda size: abs(size - keep))
    return Markup('<span class="cut cut-{width}" title="{full}">{full}</span>').format(
        width=width, full=value
    )


# The widths (in characters) the stylesheet's .cut-N classes cut ids to.
CUT_WIDTHS = (10, 12, 14, 16, 18)
# Stripe Dashboard pages by the id's prefix.
_STRIPE_PAGES = {
    "cus_": "customers",
    "sub_": "subscriptions",
    "in_": "invoices",
    "dp_": "disputes",
    "evt_": "events",
    "ch_": "payments",
    "pi_": "payments",
}


def stripe_url(stripe_id: str | None) -> str | None:
    """The Stripe Dashboard page of an id, in the mode of the configured key (test keys' objects
    live under /test/), or None for an id of no known kind."""
    if not stripe_id:
        return None
    page = next(
        (name for prefix, name in _STRIPE_PAGES.items() if stripe_id.startswith(prefix)), None
    )
    if page is None:
        return None
    key = get_settings().stripe_secret_key or ""
    mode = "test/" if "_test_" in key else ""
    return f"https://dashboard.stripe.com/{mode}{page}/{stripe_id}"


def stripe_link(stripe_id: str | None, keep: int = 16) -> Markup:
    """A Stripe id as a link to its Dashboard page (opened elsewhere), cut like `short`."""
    url = stripe_url(stripe_id)
    if url is None:
        return Markup("<code>{}</code>").format(short(stripe_id, keep))
    return Markup('<a href="{url}" rel="noopener" target="_blank"><code>{text}</code></a>').format(
        url=url, text=short(stripe_id, keep)
    )


def tail(value: str | None, keep: int = 10) -> Markup:
    """An id whose end tells it apart (request ids share a per-process start), whole in its
    title so it can be copied."""
    if not value:
        return Markup("—")
    if len(value) <= keep:
        return escape(value)
    return Markup('<span title="{full}">…{cut}</span>').format(full=value, cut=value[-keep:])


def plain(value: Any) -> str:
    """A stored audit value as a person reads it: text as text, times as times, lists listed."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(plain(item) for item in value) or "none"
    if isinstance(value, str):
        try:
            return absolute(datetime.fromisoformat(value)) if "T" in value else value
        except ValueError:
            return value
    return str(value)


def number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    money=money,
    when=when,
    day=day,
    absolute=absolute,
    short=short,
    tail=tail,
    plain=plain,
    stripe_link=stripe_link,
    stripe_url=stripe_url,
    number=number,
)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    user: ConsoleUser | None,
    status_code: int = 200,
    block: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page, or only `block` of it when htmx asked for that part."""
    page = environment.get_template(template)
    values = {
        "request": request,
        "user": user,
        "navigation": NAVIGATION,
        "path": request.url.path,
        **context,
    }
    if block is not None and request.headers.get("hx-request") == "true":
        body = "".join(page.blocks[block](page.new_context(values)))
    else:
        body = page.render(values)
    return HTMLResponse(body, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})})
