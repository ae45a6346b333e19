"""Scopes and their members (ETIKET_API.md "Scopes")."""

from __future__ import annotations

from typing import Any

from .._config import DEFAULT_PAGE_SIZE
from ..models import ScopeIn, ScopeOut, ScopeQuery, ScopeUpdate, check
from ._base import Namespace, fields_or, seg
from ._pages import Pager

__all__ = ("Scopes",)


class Scopes(Namespace):
    """``client.scopes``."""

    async def create(self, scope: ScopeIn) -> ScopeOut:
        """Create a scope; its creator becomes a member."""
        return await self._create(
            "/api/v1/scopes/",
            scope,
            ScopeOut,
            fetch=lambda: self.get(scope.name),
            same=lambda s: s.description == scope.description,
        )

    async def get(self, name: str) -> ScopeOut:
        """One scope (403 for a non-member)."""
        out: ScopeOut = await self._http.call("GET", f"/api/v1/scopes/{seg(name)}", expect=ScopeOut)
        return out

    def list(
        self, *, name: str | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Pager[ScopeOut]:
        """The scopes you are a member of (an admin: all), optionally by name prefix."""

        async def fetch(offset: int, limit: int) -> list[ScopeOut]:
            query = ScopeQuery(name=name, offset=offset, limit=limit)
            check(query, "query")
            out: list[ScopeOut] = await self._http.call(
                "GET", "/api/v1/scopes/", params=query, expect=list[ScopeOut]
            )
            return out

        return Pager(fetch, page_size)

    async def update(
        self, name: str, changes: ScopeUpdate | None = None, **fields: Any
    ) -> ScopeOut:
        """Change a scope; ``archived=None`` un-archives it."""
        body = fields_or(ScopeUpdate, changes, fields)
        out: ScopeOut = await self._http.call(
            "PATCH", f"/api/v1/scopes/{seg(name)}", json=body, expect=ScopeOut
        )
        return out

    async def add_member(self, scope: str, username: str) -> ScopeOut:
        """Make ``username`` a member of ``scope``."""
        out: ScopeOut = await self._http.call(
            "PUT", f"/api/v1/scopes/{seg(scope)}/members/{seg(username)}", expect=ScopeOut
        )
        return out

    async def remove_member(self, scope: str, username: str) -> ScopeOut:
        """Take ``username`` out of ``scope``."""
        out: ScopeOut = await self._remove(
            f"/api/v1/scopes/{seg(scope)}/members/{seg(username)}",
            ScopeOut,
            refetch=lambda: self.get(scope),
        )
        return out
