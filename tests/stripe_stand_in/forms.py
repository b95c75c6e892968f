"""Stripe's form encoding: `a[b][0][c]=v` and `a[]=v` into nested dicts and lists.

The SDK always sends arrays indexed (`expand[0]=x`); curl users send `expand[]=x`. Both
arrive here as lists. Values stay strings (the wire has no types): the `as_*` readers
below convert them and answer Stripe's own error when they cannot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from .errors import StripeError, invalid, missing_param, unknown_param

Params = dict[str, Any]

# Keys whose children are free-form names, never list indexes.
_FREE_FORM = {"metadata"}


def parse_query(query: str) -> Params:
    return parse_pairs(parse_qsl(query, keep_blank_values=True))


def parse_body(body: bytes, content_type: str) -> Params:
    if not body:
        return {}
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise invalid(f"Invalid JSON body: {exc}") from exc
        if not isinstance(parsed, dict):
            raise invalid("The JSON body must be an object.")
        return parsed
    return parse_query(body.decode("utf-8"))


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> Params:
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, split_key(key), value, key)
    return _listify(root, None)


def split_key(key: str) -> list[str]:
    """`a[b][0][]` -> ["a", "b", "0", ""]; a key with unbalanced brackets stays whole."""
    head, bracket, rest = key.partition("[")
    if not bracket or not head:
        return [key]
    parts = [head]
    while rest:
        inner, close, rest = rest.partition("]")
        if not close or (rest and not rest.startswith("[")):
            return [key]
        parts.append(inner)
        rest = rest[1:]
    return parts


def _assign(node: dict[str, Any], parts: list[str], value: str, key: str) -> None:
    for part in parts[:-1]:
        part = part or str(len(node))
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise invalid(f"Invalid hash for {key}: a value was already given.", key)
        node = child
    last = parts[-1] or str(len(node))
    if isinstance(node.get(last), dict):
        raise invalid(f"Invalid value for {key}: a hash was already given.", key)
    node[last] = value


def _listify(node: Any, key: str | None) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v, k) for k, v in node.items()}
    if key in _FREE_FORM or not converted:
        return converted
    if all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def check_known(params: Mapping[str, Any], allowed: Iterable[str]) -> None:
    known = set(allowed) | {"expand"}
    for name in params:
        if name not in known:
            raise unknown_param(name)


def expand_paths(params: Mapping[str, Any]) -> list[str]:
    raw = params.get("expand")
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        return list(raw)
    raise invalid("Invalid array", "expand")


def as_str(
    params: Mapping[str, Any], name: str, *, required: bool = False, param: str | None = None
) -> str | None:
    label = param or name
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(label)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {_show(value)}", label, "parameter_invalid_string")
    return value


def as_int(
    params: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    param: str | None = None,
) -> int | None:
    label = param or name
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(label)
        return None
    number = _to_int(value, label)
    if minimum is not None and number < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", label)
    if maximum is not None and number > maximum:
        raise invalid(f"This value must be less than or equal to {maximum}.", label)
    return number


def as_float(params: Mapping[str, Any], name: str, *, param: str | None = None) -> float | None:
    label = param or name
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid decimal: {_show(value)}", label) from None


def as_bool(params: Mapping[str, Any], name: str, *, param: str | None = None) -> bool | None:
    label = param or name
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise invalid(f"Invalid boolean: {_show(value)}", label, "parameter_invalid_boolean")


def as_dict(params: Mapping[str, Any], name: str, *, param: str | None = None) -> Params | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise invalid(f"Invalid hash: {_show(value)}", param or name)
    return value


def as_list(params: Mapping[str, Any], name: str, *, param: str | None = None) -> list[Any]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    raise invalid(f"Invalid array: {_show(value)}", param or name)


def as_choice(
    params: Mapping[str, Any], name: str, choices: Iterable[str], *, param: str | None = None
) -> str | None:
    value = as_str(params, name, param=param)
    options = list(choices)
    if value is not None and value not in options:
        listed = ", ".join(f"`{c}`" for c in options)
        raise invalid(f"Invalid {param or name}: must be one of {listed}", param or name)
    return value


def as_metadata(params: Mapping[str, Any], name: str = "metadata") -> Params | None:
    """`metadata` as given: None when absent, {} when cleared with `metadata=`."""
    value = params.get(name)
    if value is None:
        return None
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid hash", name)
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"Invalid value for metadata key {key}", f"{name}[{key}]")
    return dict(value)


def merge_metadata(current: Mapping[str, str], update: Params | None) -> dict[str, str]:
    """Stripe's update rule: keys are merged, an empty value removes a key, `metadata=` clears."""
    if update is None:
        return dict(current)
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _to_int(value: Any, label: str) -> int:
    if isinstance(value, bool):
        raise invalid(f"Invalid integer: {_show(value)}", label, "parameter_invalid_integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise invalid(f"Invalid integer: {_show(value)}", label, "parameter_invalid_integer")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


__all__ = [
    "Params",
    "StripeError",
    "as_bool",
    "as_choice",
    "as_dict",
    "as_float",
    "as_int",
    "as_list",
    "as_metadata",
    "as_str",
    "check_known",
    "expand_paths",
    "merge_metadata",
    "parse_body",
    "parse_pairs",
    "parse_query",
    "split_key",
]
