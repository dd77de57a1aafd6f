"""Config → supervision tree: groups become supervisors with their strategies, agents carry their limits."""

from __future__ import annotations

import os

import pytest

from beamish.agent._policy import Policy
from beamish.agent._spec import AgentSpec
from beamish.company import load_config
from beamish.company._examples import solo_company_dir
from beamish.company._services import company_parts
from beamish.company._tree import build_tree

pytestmark = pytest.mark.timeout(20)


def test_the_solo_company_tree_has_memory_first_groups_in_order_and_the_scheduler_last() -> None:
    cfg = load_config(solo_company_dir() / "beamish.toml")
    root = build_tree(cfg, company_parts(cfg))
    assert [c.id for c in root.children] == [
        "memory",
        "leadership",
        "finance",
        "growth",
        "engineering",
        "scheduler",
    ]
    assert root.strategy == "one_for_one"
    finance = root.children[2].start
    assert finance.strategy == "rest_for_one"
    assert [c.id for c in finance.children] == ["cfo", "accountant"]


def test_each_agent_spec_carries_its_model_tools_budget_watchdog_and_policy() -> None:
    cfg = load_config(solo_company_dir() / "beamish.toml")
    root = build_tree(cfg, company_parts(cfg))
    spec = root.children[3].start.children[0].start  # growth → marketing
    assert isinstance(spec, AgentSpec)
    assert spec.name == "marketing"
    assert spec.model == "anthropic:claude-sonnet-4-5"
    assert spec.isolation == "process"
    names = [getattr(t, "name", t) for t in spec.tools]
    memory = [
        "create_entities",
        "create_relations",
        "add_observations",
        "delete_entities",
        "delete_observations",
        "delete_relations",
        "read_graph",
        "search_nodes",
        "open_nodes",
    ]
    assert names == [*memory, "consult", "post_update"]  # "memory" is the shared server's nine tools
    assert os.environ["BEAMISH_MEMORY_URL"].startswith("http://127.0.0.1:")
    assert (spec.budget.per_run_usd, spec.budget.per_day_usd, spec.budget.tz) == (0.2, 1.5, "UTC")
    # the defaults: restart a crash or hang, pause a loop or budget
    assert spec.policy == Policy()
    assert spec.watchdog.hang_after_s == 120


def test_a_policy_that_differs_from_the_defaults_reaches_the_agent(tmp_path: object) -> None:
    from pathlib import Path

    from beamish.company import load_config_data
    from beamish.company._tree import CompanyParts

    agent = {"instructions": "x", "model": "anthropic:claude-haiku-4-5", "policy": {"on_hang": "stop"}}
    cfg = load_config_data({"agents": {"a": agent}}, Path(str(tmp_path)) / "beamish.toml")
    spec = build_tree(cfg, CompanyParts()).children[0].start
    assert (spec.policy.on_hang, spec.policy.on_loop) == ("stop", "pause")


def test_agents_outside_any_group_hang_off_the_root_after_the_groups(tmp_path: object) -> None:
    from pathlib import Path

    from beamish.company import load_config_data
    from beamish.company._tree import CompanyParts

    agent = {"instructions": "x", "model": "anthropic:claude-haiku-4-5"}
    data = {"agents": {"a": agent, "b": agent, "c": agent}, "tree": {"groups": {"g": {"agents": ["b"]}}}}
    cfg = load_config_data(data, Path(str(tmp_path)) / "beamish.toml")
    root = build_tree(cfg, CompanyParts())
    assert [c.id for c in root.children] == ["g", "a", "c"]
