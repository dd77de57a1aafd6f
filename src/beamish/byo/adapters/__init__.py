"""Small shims that make a framework's tools journal steps without decorating each one.

Each adapter imports its framework, so each needs its extra: ``beamish[pydantic-ai]``
(:mod:`beamish.byo.adapters.pydantic_ai`), ``beamish[openai-agents]``
(:mod:`beamish.byo.adapters.openai_agents`). Model requests need no adapter: hand the framework a
:func:`beamish.durable` client.
"""
