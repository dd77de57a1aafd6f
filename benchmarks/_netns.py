"""The network the partition suite runs nodes in: one namespace per node, a bridge to the host, and a
TCP forwarder per node in front of PostgreSQL where traffic is delayed, stalled or reset.

Layout (root namespace ↔ node namespaces)::

    PostgreSQL 127.0.0.1:5432 ← forwarder <bridge ip>:<port of node i> ← bridge ← veth ← netns node i

PostgreSQL keeps listening on 127.0.0.1 only; each node reaches it through its own forwarder on the
bridge address, so a fault can hit one node's database traffic. Cutting a node's link (``ip link set
down``) is a real partition: its TCP sessions stall without a reset, as on a switch failure. The
kernel here may lack ``sch_netem`` (``tc qdisc … netem``), so delay and loss are made in the
forwarder: every chunk waits ``delay_s``; a stall holds all bytes (100 % loss while it lasts, the
sessions survive); a reset aborts every session (RST). Nodes exchange nothing directly — every
message goes through the database — and a split between them isolates their bridge ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from dataclasses import dataclass, field


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run as root or in a privileged container"
    try:
        probe = f"bmprobe{os.getpid()}"
        done = ip("netns", "add", probe, check=False)
        if done.returncode != 0:
            return f"ip netns add failed: {done.stderr.strip()}"
        ip("netns", "del", probe, check=False)
    except FileNotFoundError:
        return "the ip command (iproute2) is not installed"
    return None


class Forwarder:
    """TCP from one node's namespace to PostgreSQL, with faults that hit only that node."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.host, self.target = host, target
        self.delay_s = 0.0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_w)
        self._sessions.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)
        finally:
            self._sessions.discard(pair)
            for w in pair:
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self.flowing.wait()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            writer.write(data)
            await writer.drain()
        writer.transport.abort()

    def reset(self) -> int:
        """Abort every session (both ends see a reset); returns how many."""
        pairs = list(self._sessions)
        for pair in pairs:
            for w in pair:
                w.transport.abort()
        return len(pairs)

    async def close(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


@dataclass
class Net:
    """A bridge and ``nodes`` namespaces, named after this process so parallel runs never meet."""

    nodes: int
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    made: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) to undo, in order

    def __post_init__(self) -> None:
        octet = os.getpid() % 200 + 20
        self.subnet = f"10.213.{octet}"
        self.bridge = f"bmbr{self.tag}"
        self.bridge_ip = f"{self.subnet}.1"

    def ns(self, i: int) -> str:
        return f"bm{self.tag}n{i}"

    def host_veth(self, i: int) -> str:
        return f"bmh{self.tag}x{i}"

    def up(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        ip("addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i in range(self.nodes):
            ns, host, inner = self.ns(i), self.host_veth(i), f"bmn{self.tag}x{i}"
            ip("netns", "add", ns)
            self.made.append(("netns", ns))
            ip("link", "add", host, "type", "veth", "peer", "name", inner)
            self.made.append(("link", host))
            ip("link", "set", inner, "netns", ns)
            ip("link", "set", host, "master", self.bridge)
            ip("link", "set", host, "up")
            ip("-n", ns, "addr", "add", f"{self.subnet}.{10 + i}/24", "dev", inner)
            ip("-n", ns, "link", "set", inner, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, i: int, down: bool) -> None:
        """Take node ``i``'s link down (a partition from everything) or back up."""
        ip("link", "set", self.host_veth(i), "down" if down else "up")

    def split(self, on: bool) -> None:
        """Isolate the nodes from one another (each still reaches the host, hence the database)."""
        for i in range(self.nodes):
            subprocess.run(
                ["bridge", "link", "set", "dev", self.host_veth(i), "isolated", "on" if on else "off"],
                capture_output=True,
                check=False,
            )

    def down(self) -> list[str]:
        """Undo everything made, newest first; returns what could not be undone."""
        left = []
        for kind, name in reversed(self.made):
            done = ip(kind, "del", name, check=False)
            if done.returncode != 0 and "Cannot find" not in done.stderr and "No such" not in done.stderr:
                left.append(f"{kind} {name}: {done.stderr.strip()}")
        self.made.clear()
        return left
