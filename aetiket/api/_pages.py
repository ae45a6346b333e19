"""Offset/limit pagination as an async iterator."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ("Pager",)


class Pager(Generic[T]):
    """The records of a list endpoint, fetched a page at a time as you iterate.

    ``async for item in pager`` follows offset/limit until a page comes back short;
    ``await pager.page(offset, limit)`` fetches one page only; ``await pager.all()``
    collects everything into a list.
    """

    def __init__(
        self, fetch: Callable[[int, int], Awaitable[list[T]]], page_size: int, offset: int = 0
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._fetch = fetch
        self.page_size = page_size
        self.offset = offset

    async def page(self, offset: int | None = None, limit: int | None = None) -> list[T]:
        """One page: ``limit`` records (default the page size) from ``offset``."""
        return await self._fetch(
            self.offset if offset is None else offset, self.page_size if limit is None else limit
        )

    async def __aiter__(self) -> AsyncGenerator[T, None]:
        offset = self.offset
        while True:
            items = await self._fetch(offset, self.page_size)
            for item in items:
                yield item
            if len(items) < self.page_size:
                return
            offset += len(items)

    async def all(self) -> list[T]:
        """Every record, in the server's order."""
        return [item async for item in self]
