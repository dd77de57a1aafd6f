"""Which API keys a company's real models need, checked before anything starts.

Without a key the provider's SDK fails only when an agent makes its first call: the agent crashes,
its supervisor restarts it, the run crashes again, and the restarts climb until the group gives up —
minutes after the start, with the cause buried in an event. ``beamish run`` asks here first and
refuses to start, naming each missing variable and the agents that need it.
"""

from __future__ import annotations

from collections.abc import Mapping

from beamish.company._config import CompanyConfig

#: Per provider: the variables any one of which gives its SDK a credential, and the variable
#: that makes a key unnecessary (an OpenAI-compatible local server gets a placeholder key).
_NEEDS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "anthropic": (("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), None),
    "openai": (("OPENAI_API_KEY",), "OPENAI_BASE_URL"),
}


def missing_credentials(config: CompanyConfig, environ: Mapping[str, str]) -> dict[str, list[str]]:
    """``{variable: [agent, …]}`` for every provider key the config's agents need and ``environ``
    lacks (an empty value counts as missing). Empty when every model can be called."""
    missing: dict[str, list[str]] = {}
    for name, agent in config.agents.items():
        if agent.section.entry is not None:
            continue  # an entry agent's own code makes its clients, with whatever credentials it holds
        for model in agent.models:  # a fallback that cannot be called is no fallback
            key = missing_key(model, environ)  # None for the scripted model: it needs nothing
            if key is not None and name not in missing.get(key, []):
                missing.setdefault(key, []).append(name)
    return missing


def describe_missing(config: CompanyConfig, missing: dict[str, list[str]]) -> str:
    """The refusal ``beamish run`` prints: each variable, the agents needing it, and the way out."""
    lines = [
        f"{config.path}: the models of these agents need an API key that is not set; nothing was started"
    ]
    for variable, agents in missing.items():
        lines.append(f"  {variable}: agents {', '.join(agents)}")
    if "OPENAI_API_KEY" in missing:
        lines.append("  (an OpenAI-compatible local server needs no key: set OPENAI_BASE_URL instead)")
    lines.append("Set the variable(s) and run again, or try `beamish demo` for the same company offline.")
    return "\n".join(lines)


def missing_key(model: str, environ: Mapping[str, str]) -> str | None:
    """The variable ``model``'s provider needs and ``environ`` lacks, or None (set, or none needed)."""
    provider = model.partition(":")[0]
    if provider not in _NEEDS:
        return None
    keys, exempt_by = _NEEDS[provider]
    if any(environ.get(k) for k in keys) or (exempt_by is not None and environ.get(exempt_by)):
        return None
    return keys[0]
