"""A company agent may be the user's own code: ``entry = "module:function"`` in ``beamish.toml``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent._wire import WireServer
from beamish.company import load_config_data
from beamish.company._company import Company
from beamish.company._services import company_parts
from beamish.company._tree import agent_spec
from byo._replies import replies

pytestmark = pytest.mark.timeout(45)


def _data(isolation: str) -> dict[str, object]:
    writer = {
        "entry": "byo.fixture_agents:plain_openai",
        "model": "openai:gpt-4o-mini",
        "isolation": isolation,
    }
    return {
        "store": {"url": "sqlite:///journal.db"},
        "memory": {"enabled": False},
        "agents": {"writer": writer},
    }


def test_the_entry_key_reaches_the_agent_spec_with_no_instructions_or_tools(tmp_path: Path) -> None:
    cfg = load_config_data(_data("process"), tmp_path / "beamish.toml")
    spec = agent_spec(cfg.agents["writer"], cfg, company_parts(cfg))
    assert (spec.entry, spec.instructions, spec.tools) == ("byo.fixture_agents:plain_openai", "", ())
    assert spec.model == "openai:gpt-4o-mini"


@pytest.mark.parametrize("isolation", ["task", "process"])
async def test_a_company_with_an_entry_agent_starts_and_completes_a_run(
    tmp_path: Path, isolation: str
) -> None:
    cfg = load_config_data(_data(isolation), tmp_path / "beamish.toml")
    async with WireServer() as server:
        server.queue(
            *replies("openai-stream", [("call_1", "lookup", {"topic": "market"}), "The market is up."])
        )
        async with Company(cfg, parts=company_parts(cfg)) as company:
            run_id = await company.submit(
                "writer", {"task": "report the market", "base_url": server.url}, f"entry-{uuid.uuid4().hex}"
            )
            done = await company.node.result(run_id, timeout=30)
        assert len(server.requests) == 2
    assert done.status == "succeeded"
    assert done.output == "The market is up."
    assert done.cost_usd is not None and done.cost_usd > 0


def test_an_entry_agent_is_not_refused_for_a_provider_key_its_own_code_may_not_need(tmp_path: Path) -> None:
    from beamish.company._credentials import missing_credentials

    data = _data("task")
    data["agents"] = {**data["agents"], "ceo": {"instructions": "Lead.", "model": "openai:gpt-4o-mini"}}  # type: ignore[dict-item]
    cfg = load_config_data(data, tmp_path / "beamish.toml")
    assert missing_credentials(cfg, {}) == {"OPENAI_API_KEY": ["ceo"]}
