"""One helper for every public namespace: exported names report the public module, not the private one.

Users then see ``beamish.Node`` (or ``beamish.journal.Store``) in reprs, tracebacks and docs, as httpx
does for its own names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any


def claim_public_module(namespace: Mapping[str, Any], names: Iterable[str], module: str) -> None:
    """Set ``__module__ = module`` on every class and function among ``names`` in ``namespace``."""
    for name in names:
        obj = namespace[name]
        if isinstance(obj, type) or callable(obj):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = module
