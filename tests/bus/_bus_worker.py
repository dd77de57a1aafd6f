"""A mailbox consumer in its own process that handles one message and dies (SIGKILL) before the ack.

Usage: python _bus_worker.py URL BOX
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from _bus_handler import handle

from beamish.bus import Mailboxes
from beamish.journal import open_store


async def main(url: str, box: str) -> None:
    store = await open_store(url)
    boxes = Mailboxes(store, owner="crasher", lease_s=30, poll_s=0.05)
    msg = await boxes.receive(box, timeout=20)
    await handle(store, msg)
    os.kill(os.getpid(), signal.SIGKILL)  # the effect is done, the ack never happens


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
