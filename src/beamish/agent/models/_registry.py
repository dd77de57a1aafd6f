"""Model strings → model objects: ``"anthropic:<model>"``, ``"openai:<model>"``, ``"scripted:<file>"``.

A spec names its model as a string so it stays JSON (a process-isolated agent re-creates its model
from the string in the child). Options (base URL, timeouts) come as keyword arguments.
"""

from __future__ import annotations

from typing import Any

from beamish._exceptions import SpecError
from beamish.agent.models._anthropic import AnthropicModel
from beamish.agent.models._openai import OpenAIModel
from beamish.agent.models._protocol import Model
from beamish.agent.models._scripted import OPTIONS, ScriptedModel
from beamish.agent.models._settings import check_options

PROVIDERS = ("anthropic", "openai", "scripted")


def parse_model_string(spec: str) -> tuple[str, str]:
    """Split ``"provider:model"``; a bad string is a ``SpecError`` that lists the providers."""
    if not isinstance(spec, str) or ":" not in spec:
        raise SpecError(
            f"model {spec!r} must look like 'provider:model' with provider one of {list(PROVIDERS)}"
        )
    provider, _, name = spec.partition(":")
    if provider not in PROVIDERS:
        raise SpecError(f"model {spec!r}: unknown provider {provider!r}; known: {list(PROVIDERS)}")
    if not name:
        raise SpecError(f"model {spec!r}: the model name after {provider + ':'!r} is empty")
    return provider, name


def make_model(spec: str | Model, **options: Any) -> Model:
    """Build the model a spec names (a ``Model`` object is returned as it is); an option the
    provider's adapter does not take is a ``SpecError`` naming it."""
    if not isinstance(spec, str):
        return spec
    provider, name = parse_model_string(spec)
    if provider == "anthropic":
        return AnthropicModel(name, **options)
    if provider == "openai":
        return OpenAIModel(name, **options)
    check_options(provider, options, OPTIONS)
    return ScriptedModel(name, **options)
