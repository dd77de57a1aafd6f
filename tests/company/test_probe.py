"""``beamish check`` starts each MCP tool server once and lists its tools, as a client would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from beamish.company._probe import list_tools, probe_memory_server

pytestmark = pytest.mark.timeout(60)

#: A stdio "server" that answers initialize and tools/list with one tool, as MCP frames them.
FAKE = """
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        print(json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": {}}), flush=True)
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {"capabilities": {}}}), flush=True)
    elif msg.get("method") == "tools/list":
        tools = {"tools": [{"name": "echo"}]}
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": tools}), flush=True)
"""


def test_the_memory_server_starts_and_lists_its_nine_tools(tmp_path: Path) -> None:
    assert probe_memory_server(tmp_path / "memory.jsonl") is None


def test_a_server_is_asked_as_a_client_would_and_notifications_are_skipped() -> None:
    assert list_tools([sys.executable, "-c", FAKE], timeout=30) == ["echo"]


def test_a_server_that_exits_at_start_is_named_with_its_last_words() -> None:
    dies = "import sys; print('cannot import the SDK', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ValueError, match=r"the server exited \(cannot import the SDK\)"):
        list_tools([sys.executable, "-c", dies], timeout=30)


def test_a_server_that_never_answers_times_out() -> None:
    silent = "import time; time.sleep(30)"
    with pytest.raises(TimeoutError, match="no answer in time"):
        list_tools([sys.executable, "-c", silent], timeout=1)
