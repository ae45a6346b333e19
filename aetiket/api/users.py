"""Users (ETIKET_API.md "Users"): admin only, except ``me``."""

from __future__ import annotations

from typing import Any

from .._config import DEFAULT_PAGE_SIZE
from ..models import PageQuery, UserIn, UserOut, UserUpdate
from ._base import Namespace, fields_or, seg
from ._pages import Pager

__all__ = ("Users",)


class Users(Namespace):
    """``client.users``."""

    async def create(self, user: UserIn) -> UserOut:
        """Create a user (admin). ``user.hashed_password`` carries the plain password."""
        return await self._create(
            "/api/v1/users/",
            user,
            UserOut,
            fetch=lambda: self.get(user.username),
            same=lambda u: (
                (u.email, u.firstname, u.lastname) == (user.email, user.firstname, user.lastname)
            ),
        )

    async def me(self) -> UserOut:
        """The logged-in user, with the scopes they are a member of."""
        out: UserOut = await self._http.call("GET", "/api/v1/users/me", expect=UserOut)
        return out

    async def get(self, username: str) -> UserOut:
        """One user by name (admin)."""
        out: UserOut = await self._http.call(
            "GET", f"/api/v1/users/{seg(username)}", expect=UserOut
        )
        return out

    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> Pager[UserOut]:
        """Every user (admin), a page at a time."""

        async def fetch(offset: int, limit: int) -> list[UserOut]:
            out: list[UserOut] = await self._http.call(
                "GET",
                "/api/v1/users/",
                params=PageQuery(offset=offset, limit=limit),
                expect=list[UserOut],
            )
            return out

        return Pager(fetch, page_size)

    async def update(
        self, username: str, changes: UserUpdate | None = None, **fields: Any
    ) -> UserOut:
        """Change a user (admin): a ``UserUpdate`` or its fields as keywords."""
        body = fields_or(UserUpdate, changes, fields)
        out: UserOut = await self._http.call(
            "PATCH", f"/api/v1/users/{seg(username)}", json=body, expect=UserOut
        )
        return out
