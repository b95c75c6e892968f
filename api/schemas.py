"""Pydantic base for API schemas: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


T = TypeVar("T")


class Page(CamelModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
