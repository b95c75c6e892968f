"""List pagination (`limit`, `starting_after`, `ending_before`), range filters and `expand`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import objects
from .errors import StripeError, invalid, no_such, only_one_of
from .forms import as_int, as_str

Obj = dict[str, Any]
Resolver = Callable[[str], Obj | None]
Virtual = Callable[[Obj, str], Obj | None]

LIST_PARAMS = ("limit", "starting_after", "ending_before", "expand")
_RANGE_KEYS = ("gt", "gte", "lt", "lte")


def paginate(items: list[Obj], params: Mapping[str, Any], url: str, noun: str) -> Obj:
    """`items` newest first, as Stripe lists; cursors are object ids."""
    limit = as_int(params, "limit", minimum=1, maximum=100)
    limit = 10 if limit is None else limit
    after = as_str(params, "starting_after")
    before = as_str(params, "ending_before")
    if after and before:
        raise only_one_of("ending_before", "starting_after")
    if before:
        end = _position(items, before, noun, "ending_before")
        start = max(0, end - limit)
        return objects.list_object(items[start:end], url, has_more=start > 0)
    start = _position(items, after, noun, "starting_after") + 1 if after else 0
    page = items[start : start + limit]
    return objects.list_object(page, url, has_more=start + limit < len(items))


def _position(items: list[Obj], object_id: str, noun: str, param: str) -> int:
    for index, item in enumerate(items):
        if item.get("id") == object_id:
            return index
    raise no_such(noun, object_id, param=param, status=400)


def in_range(value: int | None, spec: Any, param: str) -> bool:
    """`created=123` or `created[gte]=...&created[lt]=...`."""
    if spec is None or spec == "":
        return True
    if value is None:
        return False
    if not isinstance(spec, dict):
        return value == as_int({param: spec}, param)
    for key in spec:
        if key not in _RANGE_KEYS:
            raise invalid(f"Received unknown parameter: {param}[{key}]", f"{param}[{key}]")
        limit = as_int(spec, key, param=f"{param}[{key}]")
        if limit is not None and not _compare(value, key, limit):
            return False
    return True


def _compare(value: int, op: str, limit: int) -> bool:
    if op == "gt":
        return value > limit
    if op == "gte":
        return value >= limit
    if op == "lt":
        return value < limit
    return value <= limit


def expand(result: Obj, paths: list[str], resolve: Resolver, virtual: Virtual) -> Obj:
    """Replace ids by the objects they name along each dotted path (`data.` walks lists)."""
    for index, path in enumerate(paths):
        _expand(result, path.split("."), resolve, virtual, path, f"expand[{index}]")
    return result


def _expand(
    node: Any, parts: list[str], resolve: Resolver, virtual: Virtual, path: str, param: str
) -> None:
    if isinstance(node, list):
        for element in node:
            _expand(element, parts, resolve, virtual, path, param)
        return
    if not isinstance(node, dict):
        return
    key, rest = parts[0], parts[1:]
    if key not in node:
        extra = virtual(node, key)
        if extra is None:
            raise _cannot_expand(path, param)
        node[key] = extra
    value = _resolved(node[key], resolve, path, param)
    node[key] = value
    if rest and value is not None:
        _expand(value, rest, resolve, virtual, path, param)


def _resolved(value: Any, resolve: Resolver, path: str, param: str) -> Any:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, list):
        return [_resolved(element, resolve, path, param) for element in value]
    found = resolve(value) if isinstance(value, str) else None
    if found is None:
        raise _cannot_expand(path, param)
    return found


def _cannot_expand(path: str, param: str) -> StripeError:
    return invalid(f"This property cannot be expanded ({path}).", param)


def no_virtual(node: Obj, key: str) -> Obj | None:
    return None
