"""Datasets and their queries (ETIKET_API.md "Datasets")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from .._config import DEFAULT_PAGE_SIZE
from ..models import DatasetIn, DatasetOut, DatasetQuery, DatasetUpdate, check
from ._base import Namespace, fields_or, seg
from ._pages import Pager

__all__ = ("Datasets",)


class Datasets(Namespace):
    """``client.datasets``."""

    async def create(self, dataset: DatasetIn) -> DatasetOut:
        """Create a dataset (and register its files, content to be uploaded later).

        Safe to retry: the uid is yours, so a replay that meets "exists" checks that the
        existing dataset is this one.
        """
        return await self._create(
            "/api/v1/datasets/",
            dataset,
            DatasetOut,
            fetch=lambda: self.get(dataset.scope, dataset.uid),
            same=lambda d: (
                (d.name, d.collected, [f.uid for f in d.files])
                == (dataset.name, dataset.collected, [f.uid for f in dataset.files])
            ),
        )

    async def get(self, scope: str, uid: str) -> DatasetOut:
        """One dataset by ``scope/uid``."""
        out: DatasetOut = await self._http.call(
            "GET", f"/api/v1/datasets/{seg(scope)}/{seg(uid)}", expect=DatasetOut
        )
        return out

    def list(
        self,
        scope: str,
        *,
        collection: str | None = None,
        name: str | None = None,
        uid: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        sample: str | None = None,
        fridge: str | None = None,
        setup: str | None = None,
        measurement_type: str | None = None,
        keywords: Iterable[str] = (),
        variables_measured: Iterable[str] = (),
        preview: bool = False,
        ranking: int = 0,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Pager[DatasetOut]:
        """The datasets of ``scope`` matching every filter given, newest first.

        ``name`` is a prefix; ``since``/``until`` bound ``collected``; the metadata filters
        match a value or a list containing it; every keyword and variable must be there;
        ``ranking`` keeps datasets ranked at least that.
        """
        base = DatasetQuery(
            scope=scope,
            collection=collection,
            name=name,
            uid=uid,
            since=since,
            until=until,
            sample=sample,
            fridge=fridge,
            setup=setup,
            measurement_type=measurement_type,
            keywords=list(keywords),
            variables_measured=list(variables_measured),
            preview=preview,
            ranking=ranking,
        )
        check(base, "query")

        async def fetch(offset: int, limit: int) -> list[DatasetOut]:
            query = msgspec.structs.replace(base, offset=offset, limit=limit)
            out: list[DatasetOut] = await self._http.call(
                "GET", "/api/v1/datasets/", params=query, expect=list[DatasetOut]
            )
            return out

        return Pager(fetch, page_size)

    async def update(
        self, scope: str, uid: str, changes: DatasetUpdate | None = None, **fields: Any
    ) -> DatasetOut:
        """Change a dataset: a ``DatasetUpdate`` or its fields as keywords."""
        body = fields_or(DatasetUpdate, changes, fields)
        out: DatasetOut = await self._http.call(
            "PATCH", f"/api/v1/datasets/{seg(scope)}/{seg(uid)}", json=body, expect=DatasetOut
        )
        return out

    async def delete(self, scope: str, uid: str) -> None:
        """Delete a dataset with its files and their content."""
        await self._remove(f"/api/v1/datasets/{seg(scope)}/{seg(uid)}", None)
