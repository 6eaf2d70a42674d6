"""The two page envelopes of the API, defined once.

Seeds 000 and 002 answer lists as ``{"data": [...], "meta": {"pagination": {...}}}`` with
``current_page``, ``per_page``, ``total_count`` and ``total_pages``; seed 004's lists as
``{"data": [...], "meta": {"page", "per_page", "total", "total_pages"}}``. Each domain
keeps the envelope its seed documents.
"""

from __future__ import annotations

import math
from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Pagination(BaseModel):
    current_page: int
    per_page: int
    total_count: int
    total_pages: int


class PaginationMeta(BaseModel):
    pagination: Pagination

    @classmethod
    def of(cls, page: int, per_page: int, total: int) -> PaginationMeta:
        pages = math.ceil(total / per_page)
        return cls(
            pagination=Pagination(
                current_page=page, per_page=per_page, total_count=total, total_pages=pages
            )
        )


class PageMeta(BaseModel):
    page: int
    per_page: int
    total: int
    total_pages: int


class Paginated(BaseModel, Generic[T]):
    data: list[T]
    meta: PageMeta

    @classmethod
    def of(cls, items: list[T], page: int, per_page: int, total: int) -> Paginated[T]:
        pages = math.ceil(total / per_page)
        return cls(
            data=items, meta=PageMeta(page=page, per_page=per_page, total=total, total_pages=pages)
        )
