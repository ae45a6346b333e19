"""One thin module per API area: build the request, call ``_http``, return the model."""

from __future__ import annotations

from ._pages import Pager

__all__ = ("Pager",)
