"""Actors for the process-isolation tests. The child imports them by name, so they live at module level."""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

from beamish import Actor, ExitReason
from beamish.runtime._process_child import ChildHost


class Echo(Actor):
    """Answers calls; remembers casts; can report its pid, crash, block its loop or eat memory."""

    async def init(self, tag: str = "echo", log: str | None = None) -> None:
        self.tag = tag
        self.casts: list[Any] = []
        if log is not None:  # the start order, as the children themselves saw it
            with open(log, "a") as f:
                f.write(f"{tag} {os.getpid()}\n")

    async def handle_call(self, request: Any) -> Any:
        if request == "pid":
            return os.getpid()
        if request == "casts":
            return self.casts
        if request == "boom":
            raise ValueError("boom from the child")
        if request == "block":
            time.sleep(60)  # blocks the child's loop: its heartbeats stop
        if isinstance(request, dict) and "block" in request:
            with open(request["block"], "w"):
                pass  # tell the test we are about to block
            time.sleep(60)
        if request == "hog":
            hoard = []
            while True:
                hoard.append(bytearray(8 * 1024 * 1024))
        if request == "stop":
            self.stop()
            return "stopping"
        if isinstance(request, dict) and "env" in request:
            return os.environ.get(request["env"])
        if isinstance(request, dict) and "module_loaded" in request:
            return request["module_loaded"] in sys.modules
        if isinstance(request, dict) and "grow" in request:  # keep request["grow"] MiB more
            self.hoard = [*getattr(self, "hoard", []), bytearray(request["grow"] * 1024 * 1024)]
            return len(self.hoard)
        if request == "garbage":  # write a frame that is not JSON straight onto the wire
            host = next(o for o in gc.get_objects() if isinstance(o, ChildHost))
            assert host.protocol is not None and host.protocol.transport is not None
            host.protocol.transport.write(b"\x00\x00\x00\x02\xff\xfe")
            time.sleep(60)
        if request == "set":
            return {1, 2}  # cannot cross the wire
        return [self.tag, request]

    async def handle_cast(self, message: Any) -> None:
        self.casts.append(message)

    async def handle_info(self, message: Any) -> None:
        self.casts.append({"info": message})

    async def terminate(self, reason: ExitReason) -> None:
        log = os.environ.get("BEAMISH_TEST_TERMINATE_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{self.tag} {reason.kind}\n")


class FailsInit(Actor):
    async def init(self) -> None:
        raise RuntimeError("cannot start in the child")
