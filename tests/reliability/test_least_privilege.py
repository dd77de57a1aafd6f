"""Agents call only their allowed tools: a call to another agent's tool is refused, never run.

Two agents share a tools module; the lawyer is given only ``review``. Its model asks for ``pay``
(the CFO's tool, in the same module) and for a name nobody has. Both calls come back to the model
as errors naming the tool, the journal records them as refused, and ``pay`` never runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beamish.company import load_config_data
from beamish.company._company import Company
from beamish.company._services import company_parts

pytestmark = pytest.mark.timeout(60)

TOOLS = '''
import os
from pathlib import Path

import beamish


@beamish.tool(effect="once")
def pay(amount: int) -> str:
    """Pay someone.

    Args:
        amount: How much.
    """
    Path(os.environ["LEAST_PRIVILEGE_MARK"]).write_text(f"paid {amount}")
    return "paid"


@beamish.tool
def review(text: str) -> str:
    """Review a contract.

    Args:
        text: The contract.
    """
    return f"reviewed {len(text)} characters"
'''


async def test_an_agent_cannot_call_a_tool_it_was_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = tmp_path / "paid.txt"
    monkeypatch.setenv("LEAST_PRIVILEGE_MARK", str(mark))
    (tmp_path / "lp_tools.py").write_text(TOOLS)
    script = {
        "turns": [
            {"tool_calls": [{"name": "pay", "arguments": {"amount": 1000}}]},
            {"tool_calls": [{"name": "shell", "arguments": {"cmd": "rm -rf /"}}]},
            {"tool_calls": [{"name": "review", "arguments": {"text": "clause 7"}}]},
            {"text": "Reviewed. {last_tool}"},
        ]
    }
    (tmp_path / "lawyer.json").write_text(json.dumps(script))
    (tmp_path / "cfo.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    common = {"isolation": "task", "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}
    data = {
        "store": {"url": "sqlite:///j.db"},
        "memory": {"enabled": False},
        "agents": {
            "lawyer": {
                "instructions": "x",
                "model": "scripted:lawyer.json",
                "tools": ["lp_tools:review"],
                **common,
            },
            "cfo": {"instructions": "x", "model": "scripted:cfo.json", "tools": ["lp_tools:pay"], **common},
        },
    }
    config = load_config_data(data, tmp_path / "beamish.toml")
    async with Company(config, parts=company_parts(config)) as company:
        run_id = await company.submit("lawyer", "Review the Acme contract", "run-1")
        outcome = await company.node.result(run_id, timeout=30)
        steps = await company.store.steps(run_id)
    assert outcome.status == "succeeded"
    assert not mark.exists(), "the lawyer ran the CFO's tool"
    tools = [s for s in steps if s.kind == "tool"]
    assert [s.name for s in tools] == ["pay", "shell", "review"]
    refused = [json.dumps(s.response) for s in tools[:2]]
    assert "pay" in refused[0] and "shell" in refused[1]
    assert all('"is_error": true' in r or '"is_error":true' in r for r in refused), refused
    assert "reviewed" in json.dumps(tools[2].response)
