"""The public surface: what ``__all__`` names exists, and nothing public is left out."""

from __future__ import annotations

import inspect

import msgspec

import aetiket
import aetiket.errors
import aetiket.models


def test_all_names_exist() -> None:
    for module in (aetiket, aetiket.errors, aetiket.models):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_every_error_is_exported() -> None:
    for name, obj in vars(aetiket.errors).items():
        if inspect.isclass(obj) and issubclass(obj, aetiket.errors.AetiketError):
            assert name in aetiket.errors.__all__, name


def test_every_public_struct_is_exported() -> None:
    for name, obj in vars(aetiket.models).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, msgspec.Struct)
            and not name.startswith("_")
            and obj.__module__ == "aetiket.models"
        ):
            assert name in aetiket.models.__all__, name


def test_version() -> None:
    assert aetiket.__version__.count(".") == 2
