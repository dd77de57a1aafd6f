"""``beamish approvals | approve | deny | answer`` on the company's store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beamish.agent._gates import GatePolicy, get_gate, open_gate
from beamish.cli import app
from beamish.company import load_config
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(30)
runner = CliRunner()


@pytest.fixture
def company(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "co"), "--template", "solo", "--model", "anthropic"])
    assert result.exit_code == 0, result.output
    return tmp_path / "co" / "beamish.toml"


def _gate(config: Path, run_id: str, kind: str, args: dict[str, str]) -> str:
    async def go() -> str:
        store = await open_store(load_config(config).store_url)
        try:
            await store.create_run("marketing", "x", run_id=run_id)
            epoch = await store.claim_run(run_id, "test")
            gate = await open_gate(
                store, run_id=run_id, epoch=epoch, seq=1, kind=kind, tool="post" if kind == "approval"
                else "ask_human", args=args, policy=GatePolicy(approvers=("alice",)),
            )  # fmt: skip
            return gate.gate_id
        finally:
            await store.close()

    return asyncio.run(go())


def _status(config: Path, gate_id: str) -> tuple[str, str | None, str | None]:
    async def go() -> tuple[str, str | None, str | None]:
        store = await open_store(load_config(config).store_url)
        try:
            gate = await get_gate(store, gate_id)
            return gate.status, gate.note, gate.answer
        finally:
            await store.close()

    return asyncio.run(go())


def test_approvals_lists_the_pending_call_and_json(company: Path) -> None:
    gate_id = _gate(company, "r1", "approval", {"text": "launch day"})
    result = runner.invoke(app, ["approvals", "-c", str(company)])
    assert result.exit_code == 0, result.output
    assert gate_id in result.output and 'post({"text": "launch day"})' in result.output
    assert "decided by alice" in result.output
    listed = json.loads(runner.invoke(app, ["approvals", "-c", str(company), "--json"]).output)
    assert [g["gate_id"] for g in listed] == [gate_id]


def test_deny_with_a_note_and_a_refused_decider(company: Path) -> None:
    gate_id = _gate(company, "r1", "approval", {"text": "x"})
    refused = runner.invoke(app, ["approve", gate_id, "-c", str(company), "--by", "mallory"])
    assert refused.exit_code == 1 and "'mallory' may not decide" in refused.output
    result = runner.invoke(app, ["deny", gate_id, "-c", str(company), "--by", "alice", "--note", "off-brand"])
    assert result.exit_code == 0, result.output
    assert _status(company, gate_id) == ("denied", "off-brand", None)
    again = runner.invoke(app, ["approve", gate_id, "-c", str(company), "--by", "alice"])
    assert again.exit_code == 1 and "already decided" in again.output


def test_answer_and_a_bad_edit(company: Path) -> None:
    question = _gate(company, "r1", "question", {"question": "Which day?"})
    result = runner.invoke(app, ["answer", question, "Tuesday", "-c", str(company), "--by", "alice"])
    assert result.exit_code == 0, result.output
    assert _status(company, question) == ("answered", None, "Tuesday")
    approval = _gate(company, "r2", "approval", {"text": "x"})
    bad = runner.invoke(app, ["approve", approval, "-c", str(company), "--by", "alice", "--args", "[1]"])
    assert bad.exit_code == 2 and "--args: expected a JSON object" in bad.output
    unknown = runner.invoke(app, ["deny", "gnope", "-c", str(company), "--by", "alice"])
    assert unknown.exit_code == 1 and "no approval or question 'gnope'" in unknown.output
