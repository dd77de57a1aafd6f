"""The control channel: a 0600 unix socket beside the store that CLI commands use to reach the node."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from _company_helpers import TreeSource
from beamish._events import Event
from beamish.company._control import (
    ControlServer,
    ControlUnavailable,
    control_events,
    control_path,
    control_request,
)
from beamish.dashboard import TreeNode, UnknownAgent
from beamish.testing import wait_for

pytestmark = pytest.mark.timeout(20)


class Target(TreeSource):
    def __init__(self) -> None:
        super().__init__(TreeNode("root", "supervisor", children=[TreeNode("cfo", "agent")]))


def test_the_socket_sits_beside_a_sqlite_store(tmp_path: Path) -> None:
    assert control_path(f"sqlite:///{tmp_path}/j.db", tmp_path) == tmp_path / "j.db.sock"


def test_a_too_long_socket_path_moves_to_the_temp_dir_deterministically(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    first = control_path(f"sqlite:///{deep}/j.db", tmp_path)
    assert len(os.fsencode(first)) <= 100
    assert first == control_path(f"sqlite:///{deep}/j.db", tmp_path)


def test_a_postgresql_store_gets_a_socket_in_the_config_dir(tmp_path: Path) -> None:
    path = control_path("postgresql://u@h/db", tmp_path)
    assert path.parent == tmp_path and path.name.startswith(".beamish-")


async def test_tree_pause_and_resume_reach_the_node(tmp_path: Path) -> None:
    target = Target()
    server = ControlServer(target, tmp_path / "c.sock")
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        tree = await control_request(server.path, {"op": "tree"})
        assert tree["children"][0]["id"] == "cfo"
        assert await control_request(server.path, {"op": "pause", "agent": "cfo"}) == {"paused": "cfo"}
        assert target.root.children[0].state == "paused"
        await control_request(server.path, {"op": "resume", "agent": "cfo"})
        assert target.root.children[0].state == "running"
        with pytest.raises(RuntimeError, match="no agent named 'ceo'"):
            await control_request(server.path, {"op": "resume", "agent": "ceo"})
        with pytest.raises(RuntimeError, match="unknown op 'explode'"):
            await control_request(server.path, {"op": "explode"})
    finally:
        await server.stop()
    assert not server.path.exists()


async def test_events_stream_live_until_the_client_hangs_up(tmp_path: Path) -> None:
    target = Target()
    target.hub.publish(Event("child.started", "cfo", {}))
    server = ControlServer(target, tmp_path / "c.sock")
    await server.start()
    try:
        stream = control_events(server.path, replay=10)
        first = await asyncio.wait_for(anext(stream), 5)
        assert first.kind == "child.started"
        target.hub.publish(Event("agent.paused", "cfo", {"limit": "per_day_usd"}))
        live = await asyncio.wait_for(anext(stream), 5)
        assert (live.kind, live.data) == ("agent.paused", {"limit": "per_day_usd"})
        await stream.aclose()  # type: ignore[attr-defined]
        # the server notices and drops the subscriber
        await wait_for(lambda: not target.hub._subscribers, timeout=5, what="the subscriber to be dropped")
    finally:
        await server.stop()


async def test_no_node_means_control_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ControlUnavailable):
        await control_request(tmp_path / "nobody.sock", {"op": "ping"})


async def test_a_stale_socket_of_a_dead_node_is_replaced(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "c.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # a socket file nobody listens on, as a SIGKILLed node leaves behind
    server = ControlServer(Target(), path)
    await server.start()
    try:
        assert await control_request(path, {"op": "ping"}) == "pong"
    finally:
        await server.stop()


async def test_a_second_node_on_the_same_store_is_refused(tmp_path: Path) -> None:
    first = ControlServer(Target(), tmp_path / "c.sock")
    await first.start()
    try:
        with pytest.raises(RuntimeError, match="already serving"):
            await ControlServer(Target(), tmp_path / "c.sock").start()
    finally:
        await first.stop()


async def test_the_dashboard_can_show_a_node_it_reaches_only_through_the_socket(tmp_path: Path) -> None:
    from beamish.company._remote import RemoteView

    target = Target()
    target.hub.publish(Event("child.started", "cfo", {}))
    server = ControlServer(target, tmp_path / "c.sock")
    await server.start()
    try:
        view = RemoteView(server.path)
        assert (await view.tree()).children[0].id == "cfo"
        events = view.events(replay=5)
        assert (await asyncio.wait_for(anext(events), 5)).kind == "child.started"
        await events.aclose()  # type: ignore[attr-defined]
        await view.pause("cfo")
        assert target.root.children[0].state == "paused"
        await view.resume("cfo")
        assert target.root.children[0].state == "running"
        with pytest.raises(UnknownAgent):
            await view.resume("nobody")
    finally:
        await server.stop()
