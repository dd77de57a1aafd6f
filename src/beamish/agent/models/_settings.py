"""A model adapter's settings, with their defaults stated once.

The Anthropic and OpenAI adapters take the same settings (key, URL, streaming, the request timeout,
the two stream stall limits, the clock, an injected client); they are declared here as one frozen
dataclass rather than as three copies of a keyword list, and an option no adapter knows is named
(``model_options={"timeout": 5}`` says which options exist instead of failing in ``__init__``).
The stall limits are also the watchdog's defaults: a spec's watchdog decides them for its model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._exceptions import SpecError

#: Longest wait for a whole request (the SDK's own timeout).
REQUEST_TIMEOUT_S = 600.0
#: Longest wait for a stream's first chunk, and between two chunks (also ``Watchdog``'s defaults).
FIRST_CHUNK_S = 60.0
NEXT_CHUNK_S = 30.0


@dataclass(frozen=True)
class ModelSettings:
    """What every SDK adapter is configured by; each adapter adds its own extras
    (``prompt_cache`` for Anthropic, ``max_tokens_param`` for OpenAI)."""

    api_key: str | None = None
    base_url: str | None = None
    stream: bool = True
    request_timeout_s: float = REQUEST_TIMEOUT_S
    first_chunk_timeout_s: float | None = FIRST_CHUNK_S
    next_chunk_timeout_s: float | None = NEXT_CHUNK_S
    clock: Clock = SYSTEM_CLOCK
    client: Any = None

    @classmethod
    def from_options(
        cls, provider: str, options: Mapping[str, Any], extras: Iterable[str] = ()
    ) -> ModelSettings:
        """The settings among ``options``; a key that is neither a setting nor one of the adapter's
        ``extras`` is a :class:`SpecError` naming it and the known ones."""
        check_options(provider, options, SETTINGS | set(extras))
        return cls(**{k: v for k, v in options.items() if k in SETTINGS})

    @staticmethod
    def for_watchdog(watchdog: Any) -> dict[str, float | None]:
        """The stall limits a spec's watchdog sets, as model options (none without a watchdog)."""
        return {ours: getattr(watchdog, theirs) for ours, theirs in _STALLS if hasattr(watchdog, theirs)}


#: Model option ← the watchdog field that decides it.
_STALLS = (("first_chunk_timeout_s", "first_chunk_s"), ("next_chunk_timeout_s", "next_chunk_s"))
SETTINGS = frozenset(f.name for f in fields(ModelSettings))


def check_options(provider: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Name the first option ``provider``'s adapter does not take, and list the ones it does."""
    allowed = set(known)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise SpecError(
            f"model option {unknown[0]!r} is unknown for {provider}; known: {', '.join(sorted(allowed))}"
        )
