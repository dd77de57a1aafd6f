"""What the adapters share: effects per tool, validated up front, and JSON-safe tool results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from beamish._exceptions import SpecError
from beamish.journal._records import EFFECTS


def check_effects(
    effects: Mapping[str, str] | None, reconcile: Mapping[str, Callable[[str], Any]] | None
) -> None:
    """Name the bad tool when an effect is unknown or a reconcile is given for a tool that is not ``once``."""
    for tool, effect in (effects or {}).items():
        if effect not in EFFECTS:
            raise SpecError(f"effects[{tool!r}]={effect!r} is not one of {sorted(EFFECTS)}")
    for tool in reconcile or {}:
        if (effects or {}).get(tool) != "once":
            raise SpecError(f"reconcile[{tool!r}] is given but the tool's effect is not 'once'")
