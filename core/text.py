"""Free text from callers (names, companies, revocation reasons): trimmed, bounded, printable.

One set of rules, so the API, the CLI and tasks give the same 422 naming the same field.
"""

from __future__ import annotations

import unicodedata

from core.errors import InvalidInputError

LINE_BREAKS = "\t\n\r"


# Control characters, and lone surrogates: JSON can carry "\ud800", UTF-8 (and so the
# database) cannot store it.
_REFUSED_CATEGORIES = ("Cc", "Cs")


def has_control_characters(value: str, *, allowed: str = "") -> bool:
    return any(
        unicodedata.category(char) in _REFUSED_CATEGORIES and char not in allowed for char in value
    )


def clean_text(
    value: object, field: str, *, max_length: int, multi_line: bool = False
) -> str | None:
    """`value` stripped, or None when empty; a 422 naming `field` when it is not clean text.

    PostgreSQL refuses NUL outright, and the other control characters would garble the CLI's
    tables; `multi_line` allows line breaks and tabs (a reason may have several lines).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be text", field=field)
    value = value.strip()
    if len(value) > max_length:
        raise InvalidInputError(f"{field} is longer than {max_length} characters", field=field)
    if has_control_characters(value, allowed=LINE_BREAKS if multi_line else ""):
        raise InvalidInputError(f"{field} must not contain control characters", field=field)
    return value or None


def dollars(cents: int) -> str:
    """Integer US cents as the business reads them: $1,234.56, or -$13.34 for a credit."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"
