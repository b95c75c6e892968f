"""How a console table is sorted: `sort=column` (ascending) or `sort=-column` (descending), one
of the columns the table offers, each read through an index in that order."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from core.errors import InvalidInputError

MAX_SORT = 40


@dataclass(frozen=True, slots=True)
class Sort:
    column: str
    descending: bool

    @property
    def param(self) -> str:
        """As the query string says it."""
        return ("-" if self.descending else "") + self.column


def parse_sort(value: str, columns: Collection[str], default: str) -> Sort:
    """The sort a `sort=` parameter names (`default` when empty), or a 422 naming `sort`."""
    text = (value or default).strip()
    column = text.removeprefix("-")
    if column not in columns:
        raise InvalidInputError(
            f"sort must be one of {', '.join(sorted(columns))} (- before it: descending)",
            field="sort",
        )
    return Sort(column, text.startswith("-"))
