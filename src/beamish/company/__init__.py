"""The company: a ``beamish.toml`` turned into a supervised tree of agents, schedules and memory."""

from beamish.company._config import BUILTIN_TOOLS, AgentConfig, CompanyConfig, load_config, load_config_data

__all__ = ["BUILTIN_TOOLS", "AgentConfig", "CompanyConfig", "load_config", "load_config_data"]
