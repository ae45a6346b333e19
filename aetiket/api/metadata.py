"""Dataset metadata (ETIKET_API.md "Metadata"): merge, replace, remove keys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._http import Idempotency
from ..models import DatasetMeta, DatasetMetaKeys, DatasetOut, MetaValue, check
from ._base import Namespace, seg

__all__ = ("Metadata",)


class Metadata(Namespace):
    """``client.metadata``. Keys and string values are 3..19 characters (checked first)."""

    def _path(self, scope: str, uid: str) -> str:
        return f"/api/v1/metadata/{seg(scope)}/{seg(uid)}"

    async def add(self, scope: str, uid: str, meta: Mapping[str, MetaValue]) -> DatasetOut:
        """Merge ``meta`` into the dataset's metadata (a given key's value replaces)."""
        body = DatasetMeta(meta=dict(meta))
        check(body)
        # A POST: not replayed after a failure whose outcome is unknown (only when the
        # connection could not even be made).
        out: DatasetOut = await self._http.call(
            "POST",
            self._path(scope, uid),
            json=body,
            expect=DatasetOut,
            idempotency=Idempotency.UNSAFE,
        )
        return out

    async def set(self, scope: str, uid: str, meta: Mapping[str, MetaValue]) -> DatasetOut:
        """Replace the dataset's metadata with ``meta``."""
        body = DatasetMeta(meta=dict(meta))
        check(body)
        out: DatasetOut = await self._http.call(
            "PUT", self._path(scope, uid), json=body, expect=DatasetOut
        )
        return out

    async def delete(self, scope: str, uid: str, keys: Iterable[str]) -> DatasetOut:
        """Remove ``keys`` from the dataset's metadata."""
        body = DatasetMetaKeys(keys=list(keys))
        out: DatasetOut = await self._http.call(
            "DELETE", self._path(scope, uid), json=body, expect=DatasetOut
        )
        return out
