"""Shared by the hypothesis test modules of tests/server.

Importing this module loads ``hypothesis.extra._patching`` (and with it libcst) once,
with DeprecationWarning silenced. Hypothesis imports it lazily, from its pytest plugin,
to print a patch when a *generated* example fails; libcst's import then warns
(``mypy_extensions.TypedDict is deprecated``), and ``filterwarnings = error`` turns that
warning into a pytest INTERNALERROR that hides the real failure.
"""

from __future__ import annotations

import contextlib
import warnings

# ImportError: without libcst hypothesis skips the patch, and nothing warns.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401
