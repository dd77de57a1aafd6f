"""systemd's notify protocol against a real unix datagram socket, and the loop watchdog's heartbeat."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from beamish._sdnotify import SystemdNotifier
from beamish.runtime import Node

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket, as systemd's NOTIFY_SOCKET is (short path: sun_path holds 108 bytes)."""
    folder = tempfile.mkdtemp(prefix="sd", dir="/tmp")
    path = str(Path(folder) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10.0)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(folder)


def test_ready_status_stopping_and_reloading_arrive_as_one_datagram_each(
    listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = SystemdNotifier.from_env()
    assert notifier.ready("company 'solo' running: 3 agents")
    assert sock.recv(4096) == b"READY=1\nSTATUS=company 'solo' running: 3 agents"
    assert notifier.reloading()
    reloading = sock.recv(4096).decode().split("\n")
    assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_an_abstract_socket_name_is_written_with_a_leading_at(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"beamish-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = SystemdNotifier.from_env()
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        notifier.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier.from_env()
    assert not notifier.enabled and not notifier.ready() and notifier.sent == 0


def test_a_watchdog_meant_for_another_pid_is_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/tmp/x")
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert SystemdNotifier.from_env().watchdog_s is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier.from_env().watchdog_s == 2.0


async def test_the_nodes_loop_watchdog_sends_watchdog_heartbeats_while_the_loop_runs(
    listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping at least every 0.1 s
    notifier = SystemdNotifier.from_env()
    sock.setblocking(False)
    async with Node(loop_watch_s=0.05) as node:
        watchdog = node.loop_watchdog
        assert watchdog is not None and watchdog.responsive()
        watchdog.heartbeats.append(notifier.heartbeat)
        loop = __import__("asyncio").get_running_loop()
        first = await loop.sock_recv(sock, 4096)
        second = await loop.sock_recv(sock, 4096)
    assert first == second == b"WATCHDOG=1"
    notifier.close()


async def test_a_blocked_loop_stops_the_heartbeat_until_it_runs_again() -> None:
    """The heartbeat comes only from a check that finds the loop responsive: code that blocks the
    loop (here ``time.sleep``, the very bug the watchdog exists for) stops it, and systemd's
    WatchdogSec= then restarts the node."""
    import asyncio
    import time

    stamps: list[float] = []
    async with Node(loop_watch_s=0.05) as node:
        watchdog = node.loop_watchdog
        assert watchdog is not None
        watchdog.heartbeats.append(lambda: stamps.append(time.monotonic()))
        while not stamps:
            await asyncio.sleep(0.01)
        blocked_from = time.monotonic()
        time.sleep(0.5)  # blocks the loop on purpose
        blocked_to = time.monotonic()
        assert not watchdog.responsive()
        count = len(stamps)
        while len(stamps) == count:
            await asyncio.sleep(0.01)
    # a check may still find the last tick fresh just after the block begins (within the threshold)
    during = [t for t in stamps if blocked_from + 0.05 + watchdog.interval_s < t < blocked_to]
    assert during == []
    assert stamps[-1] > blocked_to
