"""A memory server bound beyond loopback requires a bearer token: the company makes one for the
run, its agents send it, and it is written nowhere (journal, events)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from beamish.company import CompanyConfig, load_config_data
from beamish.company import _memory_tools as mt
from beamish.company._company import Company
from beamish.company._services import company_parts
from beamish.memory._server import TOKEN_ENV

pytestmark = pytest.mark.timeout(45)

REMEMBER = [
    {
        "tool_calls": [
            {
                "name": "create_entities",
                "arguments": {
                    "entities": [{"name": "launch", "entityType": "plan", "observations": ["May"]}]
                },
            }
        ]
    },
    {"text": "Noted."},
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The company sets both variables in this process: put them back as they were afterwards."""
    for name in (TOKEN_ENV, mt.URL_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(mt, "_CLIENT", None)


def config(tmp_path: Path, host: str) -> CompanyConfig:
    (tmp_path / "ceo.json").write_text(json.dumps({"turns": REMEMBER}))
    agent = {
        "instructions": "Remember the plan.",
        "model": "scripted:ceo.json",
        "tools": ["memory"],
        "price": {"input_per_mtok": 0, "output_per_mtok": 0},
    }
    data = {"memory": {"host": host}, "agents": {"ceo": agent}}
    return load_config_data(data, tmp_path / "beamish.toml")


def _post_without_token(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        conn.request("POST", parts.path, body="{}", headers={"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_client_and_the_server_name_the_same_token_variable() -> None:
    assert mt.TOKEN_ENV == TOKEN_ENV


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_a_loopback_memory_server_gets_no_token(tmp_path: Path, host: str) -> None:
    company_parts(config(tmp_path, host))
    assert TOKEN_ENV not in os.environ


def test_an_operators_token_is_kept(tmp_path: Path) -> None:
    os.environ[TOKEN_ENV] = "operator-chosen-token"
    company_parts(config(tmp_path, "0.0.0.0"))
    assert os.environ[TOKEN_ENV] == "operator-chosen-token"


async def test_agents_reach_a_memory_server_beyond_loopback_with_the_runs_token(tmp_path: Path) -> None:
    cfg = config(tmp_path, "0.0.0.0")  # every interface, so not loopback; the agents reach it locally
    async with Company(cfg, parts=company_parts(cfg)) as company:
        token = os.environ[TOKEN_ENV]
        assert len(token) >= 32
        run_id = await company.submit("ceo", "Remember the launch", "remember-1")
        done = await company.node.result(run_id, timeout=30)
        unauthorised = await asyncio.to_thread(_post_without_token, os.environ[mt.URL_ENV])
    assert done.status == "succeeded", done
    assert unauthorised == 401, "without the token the server answers nothing"
    memory = [json.loads(line) for line in cfg.memory_file.read_text().splitlines()]
    assert memory[0]["name"] == "launch"
    journal = b"".join(p.read_bytes() for p in tmp_path.glob("beamish.db*"))
    assert journal and token.encode() not in journal
