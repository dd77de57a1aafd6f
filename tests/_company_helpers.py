"""Companies for tests in several folders: an in-memory one, and the offline demo as a process.

``TreeSource`` speaks the source protocol of the dashboard and the control channel for real (a
tree, an event hub, pause and resume of named agents), so a request reaches the same server code as
on a live node; test folders subclass it for their own tree and for what they record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from beamish._events import Event
from beamish.dashboard import EventHub, TreeNode, UnknownAgent


class TreeSource:
    """A fixed tree under ``root``; pause and resume set the named agent's state."""

    def __init__(self, root: TreeNode) -> None:
        self.hub = EventHub()
        self.root = root

    def agent(self, name: str) -> TreeNode:
        """The agent called ``name``; :class:`UnknownAgent` when the tree has none (or it is a supervisor)."""
        for node in self.root.walk():
            if node.id == name and node.type == "agent":
                return node
        raise UnknownAgent(name)

    async def tree(self) -> TreeNode:
        return self.root

    def events(self, *, replay: int = 50) -> AsyncIterator[Event]:
        return self.hub.subscribe(replay)

    async def pause(self, agent: str) -> None:
        self.agent(agent).state = "paused"

    async def resume(self, agent: str) -> None:
        self.agent(agent).state = "running"


BEAMISH = Path(sys.executable).parent / "beamish"


def run_demo_json(cwd: Path, *, duration: int, seed: int, timeout: float) -> dict[str, Any]:
    """``beamish demo --json`` run offline (no ``*_API_KEY`` reaches it); its one summary object."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [str(BEAMISH), "demo", "--duration", str(duration), "--json", "--seed", str(seed)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout  # --json prints exactly one JSON object
    data: dict[str, Any] = json.loads(lines[0])
    return data


def wait_for_control_socket(proc: subprocess.Popen[str], socket: Path, timeout: float = 60.0) -> None:
    """Until ``beamish run`` (``proc``) opens its control socket, which it does once its tree is up;
    fails with the node's stderr if it exits first, or after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not socket.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"the node did not start within {timeout:g} s"
        time.sleep(0.05)
