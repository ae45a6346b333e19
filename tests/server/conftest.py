"""Fixtures of the server tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import ServerProcess
from tests.server.tus_support import Ctx, context


@pytest.fixture
async def ctx(server: ServerProcess) -> AsyncIterator[Ctx]:
    """A regular user with a fresh scope on the session-wide server."""
    async with context(server.url, server.admin_user, server.admin_password) as c:
        yield c
