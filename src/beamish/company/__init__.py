"""The company: a ``beamish.toml`` turned into a supervised tree of agents, schedules and memory.

``load_config(path)`` validates a config (a bad one raises ``ConfigError`` listing every problem);
``Company(config, parts=company_parts(config))`` runs it (``async with``), and is also the source
the dashboard and the control socket read (``tree()``, ``events()``, ``submit``, ``pause``, ``resume``).
``set_company_budget(store, Budget(...))`` stores company-wide caps for a node started without a config
(a ``Company`` stores its ``[budget]`` at start); ``load_company_budget(store)`` reads them back.
"""

from beamish.agent._budget import load_company_budget, set_company_budget
from beamish.company._company import Company
from beamish.company._config import BUILTIN_TOOLS, AgentConfig, CompanyConfig, load_config, load_config_data
from beamish.company._services import company_parts
from beamish.company._tree import CompanyParts, build_tree
from beamish.company._upgrades import attach_upgrades, reload_company

__all__ = [
    "BUILTIN_TOOLS",
    "AgentConfig",
    "Company",
    "CompanyConfig",
    "CompanyParts",
    "attach_upgrades",
    "build_tree",
    "company_parts",
    "load_company_budget",
    "load_config",
    "load_config_data",
    "reload_company",
    "set_company_budget",
]
