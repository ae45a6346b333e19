"""What every API namespace shares: the HTTP core, path quoting, safe creates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from .._http import HttpCore, Idempotency
from ..errors import Conflict, NotFound
from ..models import check

__all__ = ("Namespace", "fields_or", "seg")

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)


def seg(value: str) -> str:
    """One URL path segment (``/`` and everything unsafe escaped)."""
    return quote(value, safe="")


class Namespace:
    """Base of ``client.users``, ``client.datasets``, ...: thin calls over ``HttpCore``."""

    def __init__(self, http: HttpCore) -> None:
        self._http = http

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _create(
        self,
        path: str,
        body: msgspec.Struct,
        expect: type[T],
        fetch: Callable[[], Awaitable[T]],
        same: Callable[[T], bool],
    ) -> T:
        """POST a create whose identifier the client chose; safe to replay.

        When a replayed request (the first try's outcome unknown) meets 409, the existing
        record is fetched: if it is ours (``same``), that is the result; otherwise the
        conflict is real and raised.
        """
        check(body)
        try:
            result: T = await self._http.call(
                "POST", path, json=body, expect=expect, idempotency=Idempotency.CREATE
            )
        except Conflict as exc:
            if not exc.replayed:
                raise
            existing = await fetch()
            if same(existing):
                return existing
            raise
        return result

    async def _remove(
        self, path: str, expect: Any, refetch: Callable[[], Awaitable[T]] | None = None
    ) -> Any:
        """DELETE; a 404 met by a replay (the first try did it) is the success it reports.

        ``refetch`` gives the answer a successful first try would have given.
        """
        try:
            return await self._http.call("DELETE", path, expect=expect)
        except NotFound as exc:
            if not exc.replayed:
                raise
            return None if refetch is None else await refetch()


def fields_or(struct: type[S], changes: S | None, fields: dict[str, Any]) -> S:
    """An update body from a struct or keyword fields (not both), checked."""
    if changes is not None and fields:
        raise TypeError("give the changes as a struct or as keywords, not both")
    body = changes if changes is not None else struct(**fields)
    check(body)
    return body
