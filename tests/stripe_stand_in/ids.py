"""Stripe-looking ids and billing-period arithmetic."""

from __future__ import annotations

import calendar
import secrets
import string
from datetime import UTC, datetime, timedelta

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    """`cus_Q3x...`: Stripe ids are a type prefix and a random base62 tail."""
    return f"{prefix}_{random_token(length)}"


def checkout_session_id(livemode: bool = False) -> str:
    mode = "live" if livemode else "test"
    return f"cs_{mode}_a1{random_token(56)}"


def new_request_id() -> str:
    return new_id("req", 14)


def invoice_prefix() -> str:
    return secrets.token_hex(4).upper()


def promotion_code_text() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def add_interval(anchor: int, interval: str, count: int) -> int:
    """`anchor` moved `count` intervals on; months keep the anchor's day where it exists."""
    start = datetime.fromtimestamp(anchor, UTC)
    if interval == "day":
        return int((start + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((start + timedelta(weeks=count)).timestamp())
    months = count * 12 if interval == "year" else count
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())
