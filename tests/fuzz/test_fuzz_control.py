"""Fuzzing the control channel (the unix socket ``beamish status|pause|resume`` speak to a node).

Any bytes, any JSON, huge and deeply nested requests: each connection gets one reply line, an
error for a bad request names what is wrong, and the node answers ``ping`` afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamish.company._control import ControlServer

from ._sources import SmallCompany

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def control_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("ctl") / "node.sock"
    loop = asyncio.new_event_loop()
    server = ControlServer(SmallCompany(), path)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield path
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def ask(path: Path, payload: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the node answered and hung up before reading everything: its reply is still there
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.endswith(b"\n"), f"no reply line to {payload[:80]!r}"
    reply: dict[str, Any] = json.loads(data.splitlines()[0])
    return reply


def still_answers(path: Path) -> None:
    assert ask(path, b'{"op": "ping"}\n') == {"ok": True, "result": "pong"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"op": st.sampled_from(["ping", "tree", "pause", "resume", "submit", "reload", "nope", ""])},
        optional={"agent": json_values, "task": json_values, "run_id": json_values, "config": json_values},
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests)
def test_any_json_request_gets_one_reply_and_the_node_keeps_answering(
    control_socket: Path, request: Any
) -> None:
    reply = ask(control_socket, json.dumps(request).encode() + b"\n")
    assert set(reply) in ({"ok", "result"}, {"ok", "error"})
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]
    if not isinstance(request, dict):
        assert "JSON object" in reply["error"]
    elif request.get("op") == "nope":
        assert "unknown op 'nope'" in reply["error"]
    elif request.get("op") in ("pause", "resume") and request.get("agent") not in ("ceo", "cfo"):
        assert not reply["ok"] and "no agent named" in reply["error"]
    still_answers(control_socket)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=512))
def test_any_bytes_get_an_error_naming_the_problem(control_socket: Path, payload: bytes) -> None:
    line = payload.split(b"\n")[0] + b"\n"
    try:
        value = json.loads(line)
    except ValueError:
        value = None
        reply = ask(control_socket, line)
        assert not reply["ok"] and "not JSON" in reply["error"]
    if value is not None and not isinstance(value, dict):
        assert "JSON object" in ask(control_socket, line)["error"]
    still_answers(control_socket)


def test_a_huge_request_is_refused_as_too_large(control_socket: Path) -> None:
    reply = ask(control_socket, b'{"op": "ping", "pad": "' + b"x" * 200_000 + b'"}\n')
    assert not reply["ok"] and "too large" in reply["error"]
    still_answers(control_socket)


def test_a_deeply_nested_request_is_refused_not_crashing_the_node(control_socket: Path) -> None:
    reply = ask(control_socket, b"[" * 30_000 + b"]" * 30_000 + b"\n")
    assert not reply["ok"] and ("recursion" in reply["error"].lower() or "JSON object" in reply["error"])
    still_answers(control_socket)


def test_the_socket_is_the_owners_alone(control_socket: Path) -> None:
    assert control_socket.stat().st_mode & 0o777 == 0o600
