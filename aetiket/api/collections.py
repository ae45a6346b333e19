"""Collections of datasets (ETIKET_API.md "Collections")."""

from __future__ import annotations

from typing import Any

from .._config import DEFAULT_PAGE_SIZE
from ..models import CollectionIn, CollectionOut, CollectionQuery, CollectionUpdate, check
from ._base import Namespace, fields_or, seg
from ._pages import Pager

__all__ = ("Collections",)


class Collections(Namespace):
    """``client.collections``."""

    def _path(self, scope: str, name: str) -> str:
        return f"/api/v1/collections/{seg(scope)}/{seg(name)}"

    async def create(self, collection: CollectionIn) -> CollectionOut:
        """Create a collection in a scope."""
        return await self._create(
            "/api/v1/collections/",
            collection,
            CollectionOut,
            fetch=lambda: self.get(collection.scope, collection.name),
            same=lambda c: c.description == collection.description,
        )

    async def get(self, scope: str, name: str) -> CollectionOut:
        """One collection."""
        out: CollectionOut = await self._http.call(
            "GET", self._path(scope, name), expect=CollectionOut
        )
        return out

    def list(
        self, scope: str, *, name: str | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Pager[CollectionOut]:
        """The collections of ``scope``, optionally by name prefix."""

        async def fetch(offset: int, limit: int) -> list[CollectionOut]:
            query = CollectionQuery(scope=scope, name=name, offset=offset, limit=limit)
            check(query, "query")
            out: list[CollectionOut] = await self._http.call(
                "GET", "/api/v1/collections/", params=query, expect=list[CollectionOut]
            )
            return out

        return Pager(fetch, page_size)

    async def update(
        self, scope: str, name: str, changes: CollectionUpdate | None = None, **fields: Any
    ) -> CollectionOut:
        """Rename a collection or change its description."""
        body = fields_or(CollectionUpdate, changes, fields)
        out: CollectionOut = await self._http.call(
            "PATCH", self._path(scope, name), json=body, expect=CollectionOut
        )
        return out

    async def add_dataset(self, scope: str, name: str, dataset_uid: str) -> CollectionOut:
        """Put a dataset into the collection."""
        out: CollectionOut = await self._http.call(
            "PUT", f"{self._path(scope, name)}/datasets/{seg(dataset_uid)}", expect=CollectionOut
        )
        return out

    async def remove_dataset(self, scope: str, name: str, dataset_uid: str) -> CollectionOut:
        """Take a dataset out of the collection."""
        out: CollectionOut = await self._remove(
            f"{self._path(scope, name)}/datasets/{seg(dataset_uid)}",
            CollectionOut,
            refetch=lambda: self.get(scope, name),
        )
        return out
