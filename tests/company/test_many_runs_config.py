"""beamish.toml's ``agents.NAME.concurrency`` and ``[limits]``: checked at load, in force when the
company starts, and the agent's queue (queued, running) in the tree ``status`` and the dashboard read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from beamish import ConfigError
from beamish.cli._render import _label
from beamish.company import load_config_data
from beamish.company._company import Company
from beamish.company._services import company_parts
from beamish.company._tree import rate_limits
from beamish.company._view import StoreView
from beamish.dashboard import TreeNode
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(60)


def _data(tmp_path: Path, **agent: Any) -> dict[str, Any]:
    (tmp_path / "support.json").write_text(json.dumps({"turns": [{"text": "Answered."}]}))
    return {
        "store": {"url": f"sqlite:///{tmp_path}/journal.db"},
        "memory": {"enabled": False},
        "agents": {
            "support": {
                "instructions": "Answer customers.",
                "model": "scripted:support.json",
                "isolation": "task",
                "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
                **agent,
            }
        },
        "limits": {"scripted": {"requests_per_minute": 50, "tokens_per_minute": 40_000}},
    }


async def test_concurrency_and_limits_from_the_config_are_in_force_and_the_queue_is_shown(
    tmp_path: Path,
) -> None:
    cfg = load_config_data(_data(tmp_path, concurrency=4), tmp_path / "beamish.toml")
    assert {k: (v.requests_per_minute, v.tokens_per_minute) for k, v in rate_limits(cfg).items()} == {
        "scripted": (50, 40_000)
    }
    async with Company(cfg, parts=company_parts(cfg)) as company:
        from beamish.agent._runs import runs_of

        assert company.node is not None and company.store is not None
        assert runs_of(company.node).specs["support"].concurrency == 4
        row = await company.store.fetchone(
            "SELECT requests_per_minute FROM rate_limits WHERE key = 'scripted'"
        )
        assert row is not None and row["requests_per_minute"] == 50
        tree = await company.tree()
    support = next(n for n in tree.walk() if n.id == "support")
    assert (support.queued, support.in_flight) == (0, 0)
    # with no node running, status reads the queue from the store
    store = await open_store(cfg.store_url)
    try:
        await store.create_run("support", "first", run_id="q-1")
        await store.create_run("support", "second", run_id="q-2", priority=3)
        await store.create_run("support", "interrupted", run_id="r-1", status="running")
        await store.create_run("support", "later", run_id="p-1", status="paused")
        tree = await StoreView(cfg, store).tree()
    finally:
        await store.close()
    support = next(n for n in tree.walk() if n.id == "support")
    assert (support.queued, support.in_flight) == (2, 1)
    assert TreeNode.from_json(support.to_json()) == support
    assert "queued 2 · running 1" in str(_label(support))


@pytest.mark.parametrize("bad", [0, 10_001, "four"])
def test_a_bad_concurrency_in_the_config_is_named(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"agents\.support\.concurrency"):
        load_config_data(_data(tmp_path, concurrency=bad), tmp_path / "beamish.toml")


def test_a_bad_limit_in_the_config_is_named(tmp_path: Path) -> None:
    data = _data(tmp_path)
    data["limits"]["scripted"]["requests_per_minute"] = 0
    with pytest.raises(ConfigError, match=r"limits\.scripted\.requests_per_minute"):
        load_config_data(data, tmp_path / "beamish.toml")


def test_the_context_table_of_an_agent_becomes_its_context_limit(tmp_path: Path) -> None:
    from beamish import ContextLimit
    from beamish.company._tree import agent_spec

    context = {"window": 32_000, "threshold": 0.7, "policy": "trim", "keep_turns": 6}
    cfg = load_config_data(_data(tmp_path, context=context), tmp_path / "beamish.toml")
    spec = agent_spec(cfg.agents["support"], cfg, company_parts(cfg))
    assert spec.context == ContextLimit(window=32_000, threshold=0.7, policy="trim", keep_turns=6)
    default = load_config_data(_data(tmp_path), tmp_path / "beamish.toml")
    assert agent_spec(default.agents["support"], default, company_parts(default)).context == ContextLimit()
    with pytest.raises(ConfigError, match=r"agents\.support\.context\.policy"):
        load_config_data(_data(tmp_path, context={"policy": "shrink"}), tmp_path / "beamish.toml")
